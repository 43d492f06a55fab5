/**
 * Secrets never reach the terminal: URL passwords (`http://user:pw@host`) become `user:***@host`,
 * `Bearer <token>` becomes `Bearer ***`. Every line the CLI prints about a URL or an error goes
 * through {@link redact}.
 *
 * @example
 *   redact('cannot open http://u:s3cret@ch:8123'); // 'cannot open http://u:***@ch:8123'
 */
export function redact(text: string): string {
  return text
    .replace(/([a-z][a-z0-9+.-]*:\/\/)([^\s/?#@:]*):([^\s/?#@]*)@/gi, (_m, scheme: string, user: string) => `${scheme}${user}:***@`)
    .replace(/(bearer\s+)[^\s"',]+/gi, '$1***');
}
