import { UnsecuredJWT, type JWTClaimVerificationOptions, type JWTPayload } from "jose";
import type { IssuerConfig, ResolvedConfig, RouteConfig } from "../config/schema";
import type { Scheme } from "../errors/challenge";
import { GateError, invalidToken } from "../errors/errors";
import { extractBearer, schemeOf } from "../extract/bearer";
import { mcpMessage } from "../extract/mcp";
import type { Requirements } from "../policy/requirements";
import { normalizeHost, type CompiledRoute } from "../policy/routes";
import { checkTokenFormat } from "../validate/introspection";
import { checkHeader, compactJwsHeader, parseCompactJws } from "../validate/jws";
import { checkExtraClaims, checkType, IssuerSelector, joseReason, jwtIssuer, takesJwts, verifyOptions, type JwtIssuer } from "../validate/jwt";
import type { Confirmation } from "../validate/claims";
import type { ProofRequest } from "../validate/dpop";
import { checkPresentation, checkProof } from "../validate/sender";
import { introspectsJwt, opaqueTokenIssuer } from "../validate/token";
import { compileRules, decide, decidePreflight, matchOperation, matchRule, type Decision } from "./decide";
import { toIdentity, type Identity } from "./identity";
import { localAnswers } from "./local";
import { protectedResources } from "./metadata";
import { secretText } from "../lib/bindings";
import { canonicalRequest, checkMethodOverride, corsPreflight, extractOptions, sameTarget } from "./request";

/**
 * What the gate would decide for a request, step by step, without sending anything. Operators run it
 * before deploying (`npm run explain`); tests hold it to the gate. It takes the gate's own steps: the
 * canonical request (request.ts), extraction, the decision (decide.ts); for a token, every check the
 * verifier makes that needs no key, with the verifier's own functions in the verifier's order (structure,
 * issuer selection, header, `typ`, jose's claim-set validation, the extra claim checks). What needs keys or
 * an upstream (signature, key selection, key sets, introspection, decryption) is listed as not checked, and
 * the decision assumes it passes. For a token with the DPoP scheme, `explainWithProof` also makes the
 * gate's proof checks (validate/sender.ts `checkProof`: the proof, its nonce when the nonce secret is given,
 * the key binding); only the replay check (a store) and a client certificate (a TLS connection) are left
 * unchecked. `explain` (synchronous) lists the proof as not checked instead.
 */

export interface ExplainRequest {
  method: string;
  /** Absolute URL, or a path (host `localhost`). */
  url: string;
  /**
   * The token as presented, checked as far as it can be without keys: sent as `Authorization: DPoP` when
   * `headers` carry a `DPoP` proof, else as `Authorization: Bearer`.
   */
  token?: string;
  /**
   * Without `token`: claims taken as verified, so only the policy is checked. With an opaque or encrypted
   * token: what its introspection or decryption would give (default none).
   */
  claims?: JWTPayload;
  /** Request headers: CORS preflight headers, method overrides, an `Authorization` header, `Mcp-Method`/`Mcp-Name`. */
  headers?: HeadersInit;
  /** The request body (UTF-8): on an MCP route, the JSON-RPC message whose operation is decided. */
  body?: string;
  /** Milliseconds since the epoch for the time checks; default the current time. */
  now?: number;
  /** Bindings by name, as the Worker's env: the DPoP nonce secret (without it, the nonce is not checked). */
  env?: Record<string, unknown>;
}

export interface TokenCheck {
  check: string;
  passed: boolean;
  /** Why it failed. */
  reason?: string;
}

export interface TokenReport {
  kind: "jwt" | "opaque" | "jwe";
  /** The configured issuer that would validate it (for an opaque token: introspect it). */
  issuer?: string;
  /** The checks made, in the verifier's order, up to the first that failed. */
  checks: TokenCheck[];
  /** What only the gate can check (keys, upstreams): the decision assumes these pass. */
  not_checked: string[];
}

export interface Explanation {
  method: string;
  host: string;
  path?: string;
  rule?: string;
  requirement?: string;
  /** On an MCP route: the operation read (`tools/call admin_reset`, `response`). */
  operation?: string;
  decision: "allow" | "deny";
  status?: number;
  reason: string;
  report_only?: boolean;
  scopes?: string[];
  /** Present when the request carries a token. */
  token?: TokenReport;
}

type Heading = Pick<Explanation, "method" | "host" | "path" | "rule" | "requirement" | "operation">;

/** The subject a token or given claims stand for, and the issuer that would have verified it. */
interface Subject {
  identity: Identity;
  issuer: IssuerConfig;
}

/** What explain decides without the proof (`explain`), or with it (`explainWithProof`), once the proof is known. */
type Steps = { final: Explanation } | Pending;

interface Pending {
  report?: TokenReport;
  /** A DPoP-scheme token's proof and what it is checked against, as the gate checks it. */
  proof?: { jwt: string; cnf: Confirmation; issuer: IssuerConfig; request: ProofRequest; nonce: "checked" | "not_checked" | "none" };
  /** The decision (decide.ts) for the checks made. */
  conclude: () => Explanation;
  /** The refusal of a failed proof check. */
  refused: (error: GateError) => Explanation;
}

/** Explain without the DPoP proof: it is listed as not checked, and the decision assumes it passes. */
export function explain(config: ResolvedConfig, input: ExplainRequest): Explanation {
  const steps = explainSteps(config, input);
  if ("final" in steps) return steps.final;
  if (steps.proof) steps.report!.not_checked.push("DPoP proof (signature, htm, htu, iat, ath, nonce, key binding) and its replay check");
  return steps.conclude();
}

/** Explain with the gate's DPoP proof checks (all but the replay check), as the CLI runs it. */
export async function explainWithProof(config: ResolvedConfig, input: ExplainRequest): Promise<Explanation> {
  const steps = explainSteps(config, input);
  if ("final" in steps) return steps.final;
  const { proof } = steps;
  if (!proof) return steps.conclude();
  const report = steps.report!;
  if (proof.nonce === "not_checked") report.not_checked.push("DPoP nonce (the nonce secret was not given)");
  report.not_checked.push("DPoP proof replay check (whether its jti was used before: the replay store)");
  try {
    await stepAsync(report, `DPoP proof: typ, alg, jwk, signature, jti, htm, htu, iat, ath${proof.nonce === "checked" ? ", nonce" : ""}${proof.cnf.jkt === undefined ? "" : ", key matches cnf.jkt"}`, () =>
      checkProof(proof.jwt, proof.cnf, proof.issuer, proof.request, (name) => input.env?.[name], proof.nonce === "checked"),
    );
  } catch (error) {
    if (!(error instanceof GateError)) throw error;
    return steps.refused(error);
  }
  return steps.conclude();
}

/** The gate's steps up to the DPoP proof: a final answer, or what is left to decide. */
function explainSteps(config: ResolvedConfig, input: ExplainRequest): Steps {
  // A path alone goes after the origin, never through URL resolution: `//admin/x` and `/\admin/x` would be
  // read as a host (a protocol-relative reference), while the gate sees them as paths.
  const url = input.url.startsWith("/") ? new URL(`https://localhost${input.url}`) : new URL(input.url, "https://localhost");
  const method = input.method.toUpperCase();
  const headers = new Headers(input.headers);
  if (input.token !== undefined) headers.set("authorization", `${headers.has("dpop") ? "DPoP" : "Bearer"} ${input.token}`);
  const heading: Heading = { method, host: normalizeHost(url.host, url.protocol) };
  const rules = compileRules(config);
  const local = localAnswers(config, protectedResources(config, rules.routes, rules.paths.caseInsensitive))(url, method);
  if (local) return { final: { ...heading, path: url.pathname, ...(local.status < 400 ? { decision: "allow" } : { decision: "deny", status: local.status }), reason: local.outcome } };
  let report: TokenReport | undefined;
  const refused = (error: GateError): Explanation => ({ ...heading, decision: "deny", status: error.status, reason: error.reason, ...(report ? { token: report } : {}) });
  try {
    const request = canonicalRequest(method, url, rules.paths, config);
    heading.path = request.path;
    checkMethodOverride(request, headers, config.methods);
    // A body given is a body sent: a preflight with one is refused, as the gate refuses it.
    const preflight = corsPreflight({ method, headers, body: input.body ?? null }, request, rules.routes, rules.paths, config.methods);
    if (preflight) {
      const decision = decidePreflight(rules, request, preflight);
      if (decision.rule) {
        heading.rule = decision.rule;
        heading.requirement = `CORS preflight for ${preflight}: forwarded without a token, CORS request headers only`;
      }
      return { final: explained(heading, decision, undefined) };
    }
    const bearer = extractBearer({ headers, url: url.href }, extractOptions(config), url);
    const route = matchRule(rules, request);
    heading.rule = route.name;
    heading.requirement = describe(route.rule);
    const mcp = route.rule.mcp;
    const operation = mcp && matchOperation(rules, route, mcpMessage(method, headers, input.body === undefined ? undefined : new TextEncoder().encode(input.body), mcp));
    if (operation?.label !== undefined) heading.operation = operation.label;
    if (operation?.requirements) heading.requirement += `; operation: ${describeRequirements(operation.requirements).join(", ") || "listed"}`;
    let subject: Subject | undefined;
    let proof: Pending["proof"];
    if (bearer) {
      report = { kind: "jwt", checks: [], not_checked: [] };
      subject = checkOffline(config, bearer.token, route, input, report);
      const cnf = senderChecks(subject, route, schemeOf(bearer), report);
      if (bearer.dpopProof !== undefined) {
        const { issuer } = subject;
        // The nonce is checked with the secret the gate has, when explain is given it.
        const nonce = issuer.dpop.nonce === undefined ? "none" : secretText(input.env?.[issuer.dpop.nonce.secret]) === undefined ? "not_checked" : "checked";
        proof = { jwt: bearer.dpopProof, cnf, issuer, nonce, request: { method: request.method, sameTarget: sameTarget(request, url.protocol, rules.paths), token: bearer.token, now: input.now ?? Date.now() } };
      }
    } else if (input.claims) {
      subject = verifiedClaims(config, input.claims);
    }
    const conclude = () => ({ ...explained(heading, decide(route, subject?.identity, subject?.issuer, operation), subject?.identity), ...(report ? { token: report } : {}) });
    return { report, proof, conclude, refused };
  } catch (error) {
    if (!(error instanceof GateError)) throw error;
    return { final: refused(error) };
  }
}

function explained(heading: Heading, decision: Decision, identity: Identity | undefined): Explanation {
  const scopes = identity ? { scopes: [...identity.scopes] } : {};
  if (decision.outcome === "deny") return { ...heading, ...scopes, decision: "deny", status: decision.status, reason: decision.reason };
  if (decision.report_only) return { ...heading, ...scopes, decision: "allow", status: decision.would!.status, reason: decision.would!.reason, report_only: true };
  return { ...heading, ...scopes, decision: "allow", reason: decision.reason };
}

/**
 * The sender-constraint checks that need no proof, certificate or store (validate/sender.ts), as the gate
 * makes them, with the rule's or the issuer's DPoP mode. Returns the token's confirmation.
 */
function senderChecks(subject: Subject, route: CompiledRoute, scheme: Scheme, report: TokenReport): Confirmation {
  const { claims } = subject.identity;
  const mode = route.rule.dpop ?? subject.issuer.dpop.mode;
  // Without a cnf, the DPoP scheme or DPoP on, the check has nothing to refuse: not listed.
  if (!Object.hasOwn(claims, "cnf") && scheme === "bearer" && mode === "disabled") return {};
  const cnf = step(report, "sender constraint: cnf, scheme and DPoP mode", () => checkPresentation(claims, subject.issuer, mode, scheme));
  if (cnf["x5t#S256"] !== undefined) report.not_checked.push("client certificate (mTLS: the TLS connection's certificate)");
  return cnf;
}

/**
 * The token's offline checks, routed as the validator routes it (validate/token.ts `validate`): a
 * five-part token with decrypting issuers configured is a nested JWE; a token with a JWS header (or any
 * other five-part token) a JWT; anything else opaque.
 */
function checkOffline(config: ResolvedConfig, token: string, route: CompiledRoute, input: ExplainRequest, report: TokenReport): Subject {
  const segments = token.split(".");
  const decrypting = config.issuers.filter((issuer) => issuer.decryption);
  if (decrypting.length && segments.length === 5) return encrypted(config, decrypting, input.claims ?? {}, report);
  const header = compactJwsHeader(token, segments);
  if (header || segments.length === 5) return jwt(config, token, segments, header, route, input.now ?? Date.now(), report);
  return opaque(config, token, input.claims ?? {}, report);
}

/** JwtVerifier.verify's checks except key selection and the signature, with its functions, in its order. */
function jwt(config: ResolvedConfig, token: string, segments: string[], decoded: ReturnType<typeof compactJwsHeader>, route: CompiledRoute, now: number, report: TokenReport): Subject {
  report.not_checked.push("key selection and key policy", "signature", "key set availability (JWKS fetch, KV)");
  const { header, claims } = step(report, "structure: compact JWS, canonical base64url", () => parseCompactJws(token, decoded));
  const { issuer, tenant } = step(report, "issuer: iss names a configured issuer (or an allowed tenant)", () => {
    if (typeof claims.iss !== "string") throw invalidToken("issuer_missing");
    return new IssuerSelector(config.issuers.filter(takesJwts).map(jwtIssuer)).select(claims.iss);
  });
  report.issuer = issuer.config.issuer;
  if (introspectsJwt(issuer.config, { introspect: route.rule.introspect })) report.not_checked.push("introspection (revocation)");
  const alg = step(report, "header: alg allowed, no crit, no b64, kid", () => checkHeader(header, issuer.config.algorithms));
  step(report, "typ", () => checkType(header, issuer));
  const options = verifyOptions(issuer.config, claims.iss as string, alg, now);
  const payload = step(report, "claims (jose): exp, nbf, aud, iss", () => joseClaims(segments[1]!, options));
  step(report, `claims: iat, cnf, ID-token claims, required_claims${tenant === undefined ? "" : ", tid"}`, () => checkExtraClaims(payload, issuer.config, now, tenant));
  return { identity: toIdentity(issuer.config, payload), issuer: issuer.config };
}

/** The unsecured-JWT header (`{"alg":"none"}`): jose validates the claims of an unsecured JWT exactly as a verified one's. */
const NONE_HEADER = "eyJhbGciOiJub25lIn0";

/**
 * jose's own claim-set validation (`validateClaimsSet`, which both `jwtVerify` and `UnsecuredJWT.decode`
 * apply), on the token's own payload bytes (its second segment), with the verifier's options.
 */
function joseClaims(payloadSegment: string, options: JWTClaimVerificationOptions): JWTPayload {
  try {
    return UnsecuredJWT.decode(`${NONE_HEADER}.${payloadSegment}.`, options).payload;
  } catch (error) {
    throw invalidToken(joseReason(error));
  }
}

/** An opaque token: which issuer introspects it, and its local format check; the answer is not known offline. */
function opaque(config: ResolvedConfig, token: string, claims: JWTPayload, report: TokenReport): Subject {
  report.kind = "opaque";
  const issuer = step(report, "an issuer takes opaque tokens like this one", () => {
    const chosen = opaqueTokenIssuer(config.issuers)(token);
    if (!chosen) throw invalidToken("malformed_token");
    return chosen;
  });
  report.issuer = issuer.issuer;
  report.not_checked.push("introspection: whether the authorization server answers active, and with which claims");
  step(report, "provider token format", () => checkTokenFormat(issuer.introspection!, token));
  return { identity: toIdentity(issuer, claims), issuer };
}

/** A nested JWE: nothing inside it can be read without the issuer's private key. */
function encrypted(config: ResolvedConfig, decrypting: IssuerConfig[], claims: JWTPayload, report: TokenReport): Subject {
  report.kind = "jwe";
  report.not_checked.push("decryption (the issuer's private key)", "every check of the JWT inside");
  const named = typeof claims.iss === "string" ? decrypting.find((issuer) => issuer.issuer === claims.iss) : undefined;
  const issuer = named ?? decrypting[0]!;
  return { identity: toIdentity(issuer, claims), issuer };
}

/** Claims given without a token, taken as verified: the issuer their `iss` selects, nothing else checked. */
function verifiedClaims(config: ResolvedConfig, claims: JWTPayload): Subject {
  if (typeof claims.iss !== "string") throw invalidToken("issuer_missing");
  const { issuer } = new IssuerSelector<JwtIssuer>(config.issuers.map(jwtIssuer)).select(claims.iss);
  return { identity: toIdentity(issuer.config, claims), issuer: issuer.config };
}

/** Runs one check and records it: passed, or failed with its reason (the refusal is rethrown). */
function step<T>(report: TokenReport, check: string, run: () => T): T {
  try {
    const result = run();
    report.checks.push({ check, passed: true });
    return result;
  } catch (error) {
    if (error instanceof GateError) report.checks.push({ check, passed: false, reason: error.reason });
    throw error;
  }
}

/** `step` for an asynchronous check. */
async function stepAsync<T>(report: TokenReport, check: string, run: () => Promise<T>): Promise<T> {
  try {
    const result = await run();
    report.checks.push({ check, passed: true });
    return result;
  } catch (error) {
    if (error instanceof GateError) report.checks.push({ check, passed: false, reason: error.reason });
    throw error;
  }
}

/** The rule's requirement in words. */
export function describe(rule: RouteConfig): string {
  if (rule.access !== "token") return rule.access;
  return ["valid token", ...describeRequirements(rule)].join(", ") + (rule.report_only ? " (report-only)" : "");
}

/** Scopes and claim conditions in words. */
function describeRequirements(requirements: Requirements): string[] {
  const parts: string[] = [];
  if (requirements.scopes.length) parts.push(`all of scopes [${requirements.scopes.join(" ")}]`);
  if (requirements.scopes_any.length) parts.push(`any of scopes [${requirements.scopes_any.join(" ")}]`);
  for (const c of requirements.claims) {
    const [op, value] = c.equals !== undefined ? ["=", c.equals] : c.one_of !== undefined ? ["in", c.one_of] : ["contains", c.contains];
    parts.push(`claim ${c.claim} ${op} ${JSON.stringify(value)}`);
  }
  return parts;
}
