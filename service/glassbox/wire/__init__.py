"""Proto ↔ core translations shared by the gRPC servicers (server/) and the job-kind adapters, which also
run in `glassbox worker` processes with no server: no grpc import, no computation."""
