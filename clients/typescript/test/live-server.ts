/**
 * Where the tests find their server: they talk to a live Glassbox server, configured by
 *
 *   GLASSBOX_ADDRESS          host:port of the server. Unset: every test is skipped, saying so.
 *   GLASSBOX_TEST_MODEL       a ready torch model with the named image set `shapes-val` (default "shapes").
 *   GLASSBOX_TEST_IMAGE       a PNG to explain (default: the repository's docs/images/star.png).
 *   GLASSBOX_TEST_MONITORING  "1" when the model's model.toml has a [monitoring] section (reference set
 *                             shapes-val, 8 images, FGSM at ε = 0 and 1/255) whose first evaluation has
 *                             finished: robustness.test.ts needs it and is skipped without it.
 *
 * tests/clients/test_typescript_client.py (part of `make test`) starts such a server and sets them all.
 */
import * as path from "node:path";

export const address = process.env.GLASSBOX_ADDRESS ?? "";
export const model = process.env.GLASSBOX_TEST_MODEL || "shapes";
/** From dist/test/ (where the compiled tests run) up to the repository root. */
export const image = process.env.GLASSBOX_TEST_IMAGE || path.resolve(__dirname, "../../../../docs/images/star.png");

/** A skip reason for `describe(..., { skip })` when no server is configured; false otherwise. */
export const withoutServer: string | false = address
  ? false
  : "GLASSBOX_ADDRESS is not set: these tests need a live server, e.g. `make serve` and then " +
    "`GLASSBOX_ADDRESS=127.0.0.1:50051 npm test` (or run tests/clients/test_typescript_client.py)";

/** A skip reason for the tests that read a [monitoring] evaluation from the server's history. */
export const withoutMonitoring: string | false =
  withoutServer ||
  (process.env.GLASSBOX_TEST_MONITORING === "1"
    ? false
    : "needs a server whose model has a [monitoring] section and a finished first evaluation; " +
      "set GLASSBOX_TEST_MONITORING=1 for such a server (tests/clients/test_typescript_client.py starts one)");
