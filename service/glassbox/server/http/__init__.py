"""The HTTP/JSON gateway (gRPC-JSON transcoding), its web page and OpenAPI document."""
