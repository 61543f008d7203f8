/**
 * JSON as I-JSON (RFC 7493 2.3) reads it: a text whose objects repeat a member name is refused. Parsers
 * disagree on duplicates (JSON.parse keeps the last, others the first or refuse), so a gate that
 * authorizes one reading must refuse texts that have two.
 */

/** A string token of a text JSON.parse accepted (so escapes are well formed). */
const STRING = /"(?:[^"\\]|\\.)*"/y;

/** The parsed value; throws SyntaxError on invalid JSON or a repeated member name. */
export function parseJsonStrict(text: string): unknown {
  const value: unknown = JSON.parse(text);
  if (text.includes("{")) checkUniqueNames(text);
  return value;
}

/** Walks the (valid) text: for each open object, the names seen, and whether the next string is a name. */
function checkUniqueNames(text: string): void {
  const stack: ({ names: Set<string>; expectName: boolean } | undefined)[] = [];
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char === "{") stack.push({ names: new Set(), expectName: true });
    else if (char === "[") stack.push(undefined);
    else if (char === "}" || char === "]") stack.pop();
    else if (char === ",") {
      const top = stack.at(-1);
      if (top) top.expectName = true;
    } else if (char === '"') {
      STRING.lastIndex = i;
      const token = STRING.exec(text)![0];
      i += token.length - 1;
      const top = stack.at(-1);
      if (!top?.expectName) continue;
      const name = JSON.parse(token) as string;
      if (top.names.has(name)) throw new SyntaxError("repeated member name");
      top.names.add(name);
      top.expectName = false;
    }
  }
}
