import type { Server } from "node:http";
import type { JWTVerifyGetKey } from "jose";
export function startExampleOrigin(options: {
  port?: number;
  host?: string;
  issuer: string;
  audience: string;
  keys: JWTVerifyGetKey;
  headerPrefix?: string;
}): Promise<{ server: Server; url: string }>;
