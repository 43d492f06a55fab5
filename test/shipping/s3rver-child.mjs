// s3rver in a process of its own, as a real S3 endpoint would be: the test process talks to it only
// over HTTP. s3rver's filesystem store has a race of its own (a delete removes an empty directory
// while a put into it is between mkdir and open, and that write stream has no error handler); here
// such an error fails one request instead of surfacing as an uncaught exception in the test run.
// argv: <directory> <bucket> [port]. Prints one line {"port": N} on stdout when it is listening.
import S3rver from 's3rver';

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
