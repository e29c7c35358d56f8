import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { Type, type Static } from 'typebox';
import { LivegraftError } from './errors.ts';
import { validator } from './validate.ts';

/**
 * TUF signing keys as files. The CLI writes them (`livegraft keys init`) and
 * the server reads its online ones from `<data>/keys/<role>.json`, so the
 * format is a contract between the two.
 *
 * Only ed25519: TUF keytype "ed25519", scheme "ed25519", keyval.public = hex
 * of the raw 32-byte public key, keyid = sha256 of the canonical JSON of the
 * public key object (TUF spec, "keyid").
 */
export const TUF_ROLES = ['root', 'targets', 'snapshot', 'timestamp'] as const;
export type TufRole = (typeof TUF_ROLES)[number];
export const TUF_ONLINE_ROLES = ['targets', 'snapshot', 'timestamp'] as const;
export type TufOnlineRole = (typeof TUF_ONLINE_ROLES)[number];

const Hex64 = Type.String({ pattern: '^[0-9a-f]{64}$' });

export const TufKeyFile = Type.Object(
  {
    livegraftTufKey: Type.Literal(1),
    /** The role the key was made for; informational, the root decides what a key may sign. */
    role: Type.Union([
      Type.Literal('root'),
      Type.Literal('targets'),
      Type.Literal('snapshot'),
      Type.Literal('timestamp'),
    ]),
    keyid: Hex64,
    keytype: Type.Literal('ed25519'),
    scheme: Type.Literal('ed25519'),
    public: Hex64,
    /** PKCS#8 PEM of the private key. */
    private: Type.String({ minLength: 1, maxLength: 4096 }),
    createdAt: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false },
);
export type TufKeyFile = Static<typeof TufKeyFile>;
const tufKeyFileValidator = validator(TufKeyFile, 'TUF key file');

/** The public key object as it appears in root.json's "keys". */
export interface TufPublicKey {
  keytype: 'ed25519';
  scheme: 'ed25519';
  keyval: { public: string };
}

/**
 * OLPC canonical JSON, the form TUF signs and hashes keys in: sorted keys, no
 * whitespace, integers only, and only `"` and `\` escaped in strings.
 */
export function tufCanonicalJson(value: unknown): string {
  if (typeof value === 'string') return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  if (typeof value === 'boolean' || value === null) return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new TypeError(`canonical JSON has no floats: ${value}`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(tufCanonicalJson).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${tufCanonicalJson(k)}:${tufCanonicalJson(v)}`).join(',')}}`;
  }
  throw new TypeError(`cannot encode a ${typeof value} as canonical JSON`);
}

export function tufPublicKey(publicHex: string): TufPublicKey {
  return { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: publicHex } };
}

export function tufKeyId(publicHex: string): string {
  return createHash('sha256')
    .update(tufCanonicalJson(tufPublicKey(publicHex)))
    .digest('hex');
}

function rawPublicHex(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new TypeError('not an Ed25519 key');
  return Buffer.from(jwk.x, 'base64url').toString('hex');
}

export function generateTufKey(role: TufRole, now: Date): TufKeyFile {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const pub = rawPublicHex(publicKey);
  return {
    livegraftTufKey: 1,
    role,
    keyid: tufKeyId(pub),
    keytype: 'ed25519',
    scheme: 'ed25519',
    public: pub,
    private: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    createdAt: now.toISOString(),
  };
}

/** Validates a key file and checks that its keyid and private key agree with its public key. */
export function parseTufKeyFile(value: unknown, where: string): TufKeyFile {
  let key: TufKeyFile;
  try {
    key = tufKeyFileValidator.parse(value);
  } catch (err) {
    throw new LivegraftError('TUF_KEY_INVALID', `${where}: ${(err as Error).message}`, { cause: err });
  }
  if (tufKeyId(key.public) !== key.keyid) {
    throw new LivegraftError('TUF_KEY_INVALID', `${where}: keyid does not match the public key`);
  }
  let derived: string;
  try {
    derived = rawPublicHex(createPublicKey(createPrivateKey(key.private)));
  } catch (err) {
    throw new LivegraftError('TUF_KEY_INVALID', `${where}: the private key is not a PKCS#8 Ed25519 PEM`, {
      cause: err,
    });
  }
  if (derived !== key.public) {
    throw new LivegraftError('TUF_KEY_INVALID', `${where}: the private key does not belong to the public key`);
  }
  return key;
}

/** Signs already-canonical bytes; returns a TUF signature object. */
export function tufSign(key: TufKeyFile, data: Uint8Array): { keyid: string; sig: string } {
  return { keyid: key.keyid, sig: sign(null, data, createPrivateKey(key.private)).toString('hex') };
}
