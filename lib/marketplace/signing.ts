/**
 * Publisher signatures for marketplace plugins: ed25519 (node:crypto) over the module's sha256 and
 * the canonical manifest. Shared by the marketplace API (checks a signature is well formed and
 * matches the key it names), the CLI (`riptide plugin keygen | sign`) and the agent (verifies
 * against the keys it trusts before a module is loaded).
 *
 * The signed bytes are `riptide-plugin-signature-v1\n<module sha256 hex>\n<canonical manifest JSON>`;
 * canonical JSON has sorted keys and no whitespace, so re-serialising a manifest cannot break it.
 *
 * @example
 *   const kp = generatePublisherKey();
 *   const sig = signPlugin(manifest, kp.privateKey);
 *   verifyPluginSignature(manifest, sha256Hex(wasm), sig, trustedKeys([kp.publicKeyText])); // { ok: true, keyId }
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { PluginManifest } from '../../sdk-plugin/src/manifest.ts';

export const SIGNATURE_FORMAT = 'riptide-plugin-signature-v1';

/** `signature.json`, next to a manifest and stored with each published version. */
export interface SignatureFile {
  format: typeof SIGNATURE_FORMAT;
  alg: 'ed25519';
  /** First 16 hex digits of sha256 over the raw 32-byte public key. */
  keyId: string;
  /** The signer's raw public key, base64. Informational: an agent verifies with its own copy of a trusted key. */
  publicKey: string;
  /** base64 ed25519 signature over {@link signedMessage}. */
  signature: string;
}

/** Marketplace names: what is safe as one path segment everywhere (no dots, slashes, upper case or look-alikes). */
export const MARKETPLACE_NAME_RE = /^[a-z][a-z0-9-]{0,63}$/;

/** Sorted keys, no whitespace; arrays keep their order. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return '[' + value.map(canonicalJson).join(',') + ']';
  const o = value as Record<string, unknown>;
  return (
    '{' +
    Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => JSON.stringify(k) + ':' + canonicalJson(o[k]))
      .join(',') +
    '}'
  );
}

export function signedMessage(manifest: PluginManifest, moduleSha256: string): Buffer {
  return Buffer.from(`${SIGNATURE_FORMAT}\n${moduleSha256}\n${canonicalJson(manifest)}`, 'utf8');
}

function rawPublicKey(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new Error('not an ed25519 key');
  return Buffer.from(jwk.x, 'base64url');
}

export function keyIdOf(key: KeyObject): string {
  return createHash('sha256').update(rawPublicKey(key)).digest('hex').slice(0, 16);
}

export interface PublisherKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  keyId: string;
  /** PKCS#8 PEM, for `<name>.key` (keep it secret). */
  privatePem: string;
  /** SPKI PEM, for `<name>.pub` (hand it to agents). */
  publicPem: string;
}

export function generatePublisherKey(): PublisherKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKey,
    publicKey,
    keyId: keyIdOf(publicKey),
    privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  };
}

export class KeyError extends Error {}

/** A private key from PKCS#8 PEM (what keygen writes). */
export function parsePrivateKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new KeyError(`not a private key: ${(err as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new KeyError(`the key is ${key.asymmetricKeyType ?? 'unknown'}, not ed25519`);
  return key;
}

/**
 * A public key from SPKI PEM, base64 of the raw 32 bytes, or base64 of SPKI DER: whatever an
 * operator pastes into `--trusted-key`.
 */
export function parsePublicKey(text: string): KeyObject {
  const t = text.trim();
  let key: KeyObject;
  try {
    if (t.startsWith('-----BEGIN')) key = createPublicKey(t);
    else {
      if (!/^[A-Za-z0-9+/_-]+=*$/.test(t)) throw new Error('neither PEM nor base64');
      const bytes = Buffer.from(t, 'base64');
      key = bytes.length === 32 ? createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: bytes.toString('base64url') }, format: 'jwk' }) : createPublicKey({ key: bytes, format: 'der', type: 'spki' });
    }
  } catch (err) {
    throw new KeyError(`not a public key: ${(err as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new KeyError(`the key is ${key.asymmetricKeyType ?? 'unknown'}, not ed25519`);
  return key;
}

/** Trusted keys by key id. */
export type TrustedKeys = ReadonlyMap<string, KeyObject>;

export function trustedKeys(texts: readonly string[]): Map<string, KeyObject> {
  const out = new Map<string, KeyObject>();
  for (const t of texts) {
    const k = parsePublicKey(t);
    out.set(keyIdOf(k), k);
  }
  return out;
}

export function signPlugin(manifest: PluginManifest, privateKey: KeyObject): SignatureFile {
  const publicKey = createPublicKey(privateKey);
  return {
    format: SIGNATURE_FORMAT,
    alg: 'ed25519',
    keyId: keyIdOf(publicKey),
    publicKey: rawPublicKey(publicKey).toString('base64'),
    signature: sign(null, signedMessage(manifest, manifest.sha256), privateKey).toString('base64'),
  };
}

export type SignatureReason = 'unsigned' | 'bad_signature' | 'untrusted_key';
export type SignatureCheck = { ok: true; keyId: string } | { ok: false; reason: SignatureReason; message: string };

/** Shape-checks a signature file; undefined when it is not one. */
export function parseSignatureFile(raw: unknown): SignatureFile | undefined {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return undefined;
  const o = raw as Record<string, unknown>;
  if (o.format !== SIGNATURE_FORMAT || o.alg !== 'ed25519') return undefined;
  if (typeof o.keyId !== 'string' || !/^[0-9a-f]{16}$/.test(o.keyId)) return undefined;
  if (typeof o.publicKey !== 'string' || typeof o.signature !== 'string' || o.signature.length > 200 || o.publicKey.length > 100) return undefined;
  return { format: SIGNATURE_FORMAT, alg: 'ed25519', keyId: o.keyId, publicKey: o.publicKey, signature: o.signature };
}

/**
 * Verifies a signature over the manifest and the module hash **as computed by the caller from the
 * bytes it holds**. With `trusted`, the key must be one of them (the embedded public key is not
 * believed); with `'embedded'` (the marketplace API), the embedded key must match its key id and
 * verify — proof of integrity, not of trust.
 */
export function verifyPluginSignature(manifest: PluginManifest, moduleSha256: string, sigRaw: unknown, trusted: TrustedKeys | 'embedded'): SignatureCheck {
  if (sigRaw === undefined || sigRaw === null) return { ok: false, reason: 'unsigned', message: `${manifest.name}@${manifest.version} has no signature` };
  const sig = parseSignatureFile(sigRaw);
  if (!sig) return { ok: false, reason: 'bad_signature', message: `${manifest.name}@${manifest.version}: the signature file is malformed (want ${SIGNATURE_FORMAT}, ed25519)` };
  let key: KeyObject | undefined;
  if (trusted === 'embedded') {
    try {
      key = parsePublicKey(sig.publicKey);
    } catch {
      return { ok: false, reason: 'bad_signature', message: `${manifest.name}@${manifest.version}: the signature's public key is not an ed25519 key` };
    }
    if (keyIdOf(key) !== sig.keyId) return { ok: false, reason: 'bad_signature', message: `${manifest.name}@${manifest.version}: key id ${sig.keyId} does not match the embedded public key` };
  } else {
    key = trusted.get(sig.keyId);
    if (!key) return { ok: false, reason: 'untrusted_key', message: `${manifest.name}@${manifest.version} is signed by key ${sig.keyId}, which is not among the ${trusted.size} trusted key(s)` };
  }
  const ok = verify(null, signedMessage(manifest, moduleSha256), key, Buffer.from(sig.signature, 'base64'));
  if (!ok) return { ok: false, reason: 'bad_signature', message: `${manifest.name}@${manifest.version}: the signature by key ${sig.keyId} does not match this module and manifest (tampered?)` };
  return { ok: true, keyId: sig.keyId };
}
