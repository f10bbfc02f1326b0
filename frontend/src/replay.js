// Rebuilds a task's code from its telemetry: the reference for the server-side replay.
// Positions are UTF-16 code units (JavaScript string indices). In Python, index the
// text encoded as UTF-16-LE (2 bytes a unit), or positions drift after any character outside
// the Basic Multilingual Plane (emoji).

/** Applies one edit event's `changes` ([fromA, toA, text], positions before the edit). */
export function applyChanges(doc, changes) {
  let out = doc;
  for (let i = changes.length - 1; i >= 0; i--) {
    const [from, to, text] = changes[i];
    out = out.slice(0, from) + text + out.slice(to);
  }
  return out;
}

/** Replays events (sorted by seq) of one task from `start`; returns the final code.
 *  Throws if an edit does not fit the document it is applied to. */
export function replay(events, start = "") {
  let doc = start;
  for (const event of events) {
    if (event.type === "snapshot") {
      doc = event.payload.code;
    } else if (event.type === "edit") {
      const { changes, base_length: baseLength, length } = event.payload;
      if (baseLength !== undefined && baseLength !== doc.length) {
        throw new Error(`edit ${event.seq} expects length ${baseLength}, document has ${doc.length}`);
      }
      doc = applyChanges(doc, changes);
      if (length !== undefined && length !== doc.length) {
        throw new Error(`edit ${event.seq} should give length ${length}, gave ${doc.length}`);
      }
    }
  }
  return doc;
}
