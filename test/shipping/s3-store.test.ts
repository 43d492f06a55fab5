// The shipping suite against S3 through @aws-sdk/client-s3, on a local s3rver this test starts
// (127.0.0.1, random port, temp folder). The outage stops the server for 60 s and starts it again
// on the same port and folder.
import { LocalS3 } from './local-s3.ts';
import { shippingSuite } from './shipping-suite.ts';

shippingSuite(
  'S3 (s3rver)',
  async () => {
    const s3 = await LocalS3.start();
    let n = 0;
    return {
      open: async () => s3.store(`t${n++}-${Date.now()}`),
      stop: () => s3.down(),
      start: () => s3.up(),
      dispose: () => s3.dispose(),
    };
  },
  { outageMs: Number(process.env.RIPTIDE_TEST_OUTAGE_MS ?? 60_000) },
);
