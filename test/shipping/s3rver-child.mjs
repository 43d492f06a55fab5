// s3rver in a process of its own, as a real S3 endpoint would be: the test process talks to it only
// over HTTP. s3rver's filesystem store has a race of its own (a delete removes an empty directory
// while a put into it is between mkdir and open, and that write stream has no error handler); here
// such an error fails one request instead of surfacing as an uncaught exception in the test run.
// argv: <directory> <bucket> [port]. Prints one line {"port": N} on stdout when it is listening.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import S3rver from 's3rver';

// s3rver's putObject answers once the request body has been read, not once the file is written, and
// writes in place (the file is truncated first): a GET right after a PUT of the same key can read an
// empty or partial object, which real S3 never serves (a marketplace test once read its index as
// truncated JSON). Write to a temporary file, wait until it is closed, then rename it into place.
const FilesystemStore = createRequire(import.meta.url)('s3rver/lib/stores/filesystem.js');
FilesystemStore.prototype.putObject = async function putObject(object) {
  const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
  await mkdir(dirname(objectPath), { recursive: true });
  const tmp = `${objectPath}.${randomBytes(6).toString('hex')}.tmp`;
  const md5 = createHash('md5');
  let size = 0;
  try {
    if (Buffer.isBuffer(object.content)) {
      md5.update(object.content);
      size = object.content.length;
      await pipeline([object.content], createWriteStream(tmp));
    } else {
      const count = new Transform({
        transform(chunk, encoding, callback) {
          md5.update(chunk, encoding);
          size += chunk.length;
          callback(null, chunk);
        },
      });
      await pipeline(object.content, count, createWriteStream(tmp));
    }
    await rename(tmp, objectPath);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  const digest = md5.digest('hex');
  await this.putMetadata(object.bucket, object.key, object.metadata, digest);
  return { size, md5: digest };
};

const [directory, bucket, portArg] = process.argv.slice(2);
if (!directory || !bucket) {
  process.stderr.write('usage: s3rver-child.mjs <directory> <bucket> [port]\n');
  process.exit(2);
}

process.on('uncaughtException', (err) => {
  process.stderr.write(`s3rver: internal error, one request failed: ${err.message}\n`);
});

const server = new S3rver({ address: '127.0.0.1', port: Number(portArg ?? 0), silent: true, directory, configureBuckets: [{ name: bucket }] });
const addr = await server.run();
process.stdout.write(`${JSON.stringify({ port: addr.port })}\n`);
process.on('SIGTERM', () => {
  void server.close().then(() => process.exit(0));
});
