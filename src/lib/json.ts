/**
 * JSON as I-JSON (RFC 7493 2.3) reads it: a text whose objects repeat a member name is refused. Parsers
 * disagree on duplicates (JSON.parse keeps the last, others the first or refuse), so a gate that
 * authorizes one reading must refuse texts that have two.
 */

/** A string token of a text JSON.parse accepted (so escapes are well formed). */
const STRING = /"(?:[^"\\]+|\\.)*"/y;

/** The parsed value; throws SyntaxError on invalid JSON or a repeated member name. */
export function parseJsonStrict(text: string): unknown {
  const value: unknown = JSON.parse(text);
  if (text.includes("{")) checkUniqueNames(text);
  return value;
}

/** The characters the walk acts on; everything between them (numbers, literals, white space) is skipped. */
const STRUCTURAL = /[{}[\],"]/g;

/** Walks the (valid) text: for each open object, the names seen, and whether the next string is a name. */
function checkUniqueNames(text: string): void {
  const stack: ({ names: Set<string>; expectName: boolean } | undefined)[] = [];
  STRUCTURAL.lastIndex = 0;
  for (let found = STRUCTURAL.exec(text); found; found = STRUCTURAL.exec(text)) {
    const char = found[0];
    if (char === "{") stack.push({ names: new Set(), expectName: true });
    else if (char === "[") stack.push(undefined);
    else if (char === "}" || char === "]") stack.pop();
    else if (char === ",") {
      const top = stack.at(-1);
      if (top) top.expectName = true;
    } else {
      STRING.lastIndex = found.index;
      const token = STRING.exec(text)![0];
      STRUCTURAL.lastIndex = found.index + token.length;
      const top = stack.at(-1);
      if (!top?.expectName) continue;
      const name = token.includes("\\") ? (JSON.parse(token) as string) : token.slice(1, -1);
      if (top.names.has(name)) throw new SyntaxError("repeated member name");
      top.names.add(name);
      top.expectName = false;
    }
  }
}
