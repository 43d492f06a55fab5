// The marketplace API suite on S3 through @aws-sdk/client-s3, against a local s3rver: the same
// claims-based lock and commit order must hold where there is no rename.
import { LocalS3 } from '../shipping/local-s3.ts';
import { marketplaceSuite } from './api-suite.ts';

marketplaceSuite(
  'S3 (s3rver)',
  async () => {
    const s3 = await LocalS3.start();
    return { open: async () => s3.store(`market-${Date.now()}`), dispose: () => s3.dispose() };
  },
  { full: false },
);
