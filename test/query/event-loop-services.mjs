// The event-loop system of test/query/event-loop.test.ts: plain Node.js HTTP, no tracing headers.
//   node event-loop-services.mjs down <port>
//     answers /down/<n>/<a|b> after a short, varying delay (so concurrent calls finish out of order)
//   node event-loop-services.mjs gateway <port> <downPort>
//     one event loop; for /seq/<n> calls /down/<n>/a then /down/<n>/b, for /par/<n> both at once
//     (Promise.all), over a keep-alive agent with 4 sockets shared by all requests.
//   node event-loop-services.mjs gateway-const <port> <downPort> <truth file>
//     the same, but the calls are /stock and /price: nothing of the request on the wire
//     (test/query/event-loop-timing.test.ts); the ground truth is written to the file.
// The request number travels in the path (content), which is what gives the test its ground truth.
import fs from 'node:fs';
import http from 'node:http';

const [role, portArg, downArg] = process.argv.slice(2);
const port = Number(portArg);

if (role === 'down') {
  let k = 0;
  http
    .createServer((req, res) => {
      k = (k * 7 + 3) % 11;
      setTimeout(() => res.end(`ok ${req.url}\n`), 1 + k);
    })
    .listen(port, '127.0.0.1');
} else if (role === 'gateway') {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const get = (path) =>
    new Promise((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: Number(downArg), path, agent }, (r) => {
          let body = '';
          r.setEncoding('utf8');
          r.on('data', (d) => (body += d));
          r.on('end', () => resolve(body));
          r.on('error', reject);
        })
        .on('error', reject);
    });
  http
    .createServer((req, res) => {
      const m = /^\/(seq|par)\/(\d+)$/.exec(req.url ?? '');
      if (!m) {
        res.statusCode = 404;
        res.end('no\n');
        return;
      }
      const [, mode, n] = m;
      const calls =
        mode === 'seq'
          ? get(`/down/${n}/a`).then((a) => get(`/down/${n}/b`).then((b) => [a, b]))
          : Promise.all([get(`/down/${n}/a`), get(`/down/${n}/b`)]);
      calls.then(
        ([a, b]) => res.end(`${mode} ${n}: ${a}${b}`),
        (e) => {
          res.statusCode = 502;
          res.end(`${e}\n`);
        },
      );
    })
    .listen(port, '127.0.0.1');
} else if (role === 'gateway-const') {
  // The same loop and pool, but the downstream calls carry nothing of the request: /seq/<n> calls
  // /stock then /price, /par/<n> both at once. The ground truth goes to a file, never on the wire:
  // per call, the request number, the path and the local port of the pooled socket it went out on
  // (a keep-alive socket carries one call at a time, so the k-th call on a port is the k-th line).
  const truth = fs.openSync(process.argv[5], 'a');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const get = (path, n) =>
    new Promise((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: Number(downArg), path, agent }, (r) => {
          // The socket is detached from the response by its end: read the port now.
          const local = r.socket.localPort;
          let body = '';
          r.setEncoding('utf8');
          r.on('data', (d) => (body += d));
          r.on('end', () => {
            fs.writeSync(truth, `${JSON.stringify({ n, path, port: local })}\n`);
            resolve(body);
          });
          r.on('error', reject);
        })
        .on('error', reject);
    });
  http
    .createServer((req, res) => {
      const m = /^\/(seq|par)\/(\d+)$/.exec(req.url ?? '');
      if (!m) {
        res.statusCode = 404;
        res.end('no\n');
        return;
      }
      const [, mode, n] = m;
      const calls =
        mode === 'seq'
          ? get('/stock', n).then((a) => get('/price', n).then((b) => [a, b]))
          : Promise.all([get('/stock', n), get('/price', n)]);
      calls.then(
        ([a, b]) => res.end(`${mode} ${n}: ${a}${b}`),
        (e) => {
          res.statusCode = 502;
          res.end(`${e}\n`);
        },
      );
    })
    .listen(port, '127.0.0.1');
} else {
  console.error('usage: event-loop-services.mjs down <port> | gateway <port> <downPort> | gateway-const <port> <downPort> <truth file>');
  process.exit(2);
}
