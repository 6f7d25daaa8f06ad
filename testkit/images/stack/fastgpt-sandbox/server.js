// Stand-in for FastGPT's code sandbox: something listening on 3000, for the health check and for
// FastGPT's SANDBOX_URL. It runs no code.
'use strict';
const http = require('http');

const port = Number(process.env.PORT || 3000);
const server = http.createServer((request, response) => {
  const found = request.method === 'GET' && request.url === '/';
  const body = found
    ? { success: true, data: 'FastGPT sandbox stand-in' }
    : { success: false, message: `The sandbox stand-in has no ${request.method} ${request.url}` };
  response.writeHead(found ? 200 : 404, { 'Content-Type': 'application/json' });
  response.end(JSON.stringify(body));
});

server.listen(port, '0.0.0.0', () => console.log(`Sandbox stand-in listening on port ${port}`));

// As PID 1 nothing stops the process unless it handles the signal itself.
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
