// Realistic JSON API bodies for plugin tests and benches: a list endpoint's response, the records
// first and the fields a plugin looks for after them.

/** A list endpoint's response of about `size` bytes; `tail` is appended after the records. */
export function apiBody(size: number, tail: Record<string, unknown>): string {
  const records: unknown[] = [];
  const rec = (i: number): unknown => ({
    id: 100_000 + i,
    uuid: `3f6c${String(i).padStart(4, '0')}-9a1e-4b7c-8d2f-6e5a4b3c2d1e`,
    name: `Customer ${i} \u00e9t\u00e9`,
    email: `customer.${i}@example.com`,
    active: i % 3 !== 0,
    balance: Math.round(i * 1234.567) / 100,
    tags: ['retail', i % 2 ? 'eu' : 'us', 'tier-2'],
    address: { street: `${i} Rue de la Paix`, city: 'Paris', zip: '75002', geo: [48.8698, 2.3311] },
    note: i % 4 === 0 ? 'said "call back"\\nafter 5pm' : null,
    created_at: '2026-11-30T12:34:56.789Z',
  });
  const wrap = (): string => JSON.stringify({ data: records, page: { size: records.length, next: 'cursor-abc123' }, ...tail });
  while (wrap().length < size) records.push(rec(records.length));
  if (records.length > 1 && wrap().length > size * 1.15) records.pop();
  return wrap();
}

export function httpResponse(body: string): Uint8Array {
  return new TextEncoder().encode(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}
export function httpRequest(body: string): Uint8Array {
  return new TextEncoder().encode(`POST /api/customers/search HTTP/1.1\r\nHost: crm\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}
