// A small Markdown reader for the assistant's replies: paragraphs, headings, fenced code
// blocks, lists (nested), block quotes, rules, inline code, bold, italic and links. It parses to
// a plain tree; `renderMarkdown` builds DOM nodes from it with createElement and text nodes
// only, so nothing in a reply is ever parsed as HTML (a reply that contains <script> shows the
// characters "<script>"). Links are shown as their text and address, not followed: a study
// page should not send participants elsewhere.
//
// parseMarkdown is pure (no DOM) and runs in Node for the tests. A reply that is still
// streaming parses too: an unclosed fence is a code block up to the end (`closed: false`).

const FENCE_OPEN = /^( {0,3})(`{3,}|~{3,})[ \t]*([^\s`]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const BULLET = /^( {0,3})([-*+])(?:([ \t]+)(.*))?$/;
const ORDERED = /^( {0,3})(\d{1,9})([.)])(?:([ \t]+)(.*))?$/;
const QUOTE = /^ {0,3}>[ ]?(.*)$/;
const BLANK = /^[ \t]*$/;
const PUNCTUATION = /[!-/:-@[-`{-~]/;

/** Markdown text -> a list of blocks:
 *  {type: "paragraph", inlines} | {type: "heading", level, inlines} |
 *  {type: "code", lang, text, closed} | {type: "list", ordered, start, items: [blocks]} |
 *  {type: "quote", blocks} | {type: "rule"}.
 *  A code block's `text` is its lines, each ending in "\n" (what the Copy button copies). */
export function parseMarkdown(source) {
  const lines = String(source ?? "").replace(/\r\n?/g, "\n").split("\n");
  return parseBlocks(lines, 0);
}

function indentOf(line) {
  return line.length - line.trimStart().length;
}

function listMarker(line) {
  const bullet = BULLET.exec(line);
  if (bullet) {
    return {
      ordered: false,
      kind: bullet[2],
      start: 1,
      indent: bullet[1].length,
      width: bullet[1].length + 1,
      gap: bullet[3] ?? "",
      rest: bullet[4] ?? "",
    };
  }
  const ordered = ORDERED.exec(line);
  if (ordered) {
    return {
      ordered: true,
      kind: ordered[3],
      start: Number.parseInt(ordered[2], 10),
      indent: ordered[1].length,
      width: ordered[1].length + ordered[2].length + 1,
      gap: ordered[4] ?? "",
      rest: ordered[5] ?? "",
    };
  }
  return null;
}

/** Whether `line` begins a block that ends a paragraph (CommonMark's "interrupts"). */
function interrupts(line) {
  if (FENCE_OPEN.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line)) {
    return true;
  }
  const marker = listMarker(line);
  // An empty item, or an ordered list not starting at 1, does not interrupt a paragraph.
  return Boolean(marker && marker.rest.trim() && (!marker.ordered || marker.start === 1));
}

function stripIndent(line, n) {
  let i = 0;
  while (i < n && line[i] === " ") i++;
  return line.slice(i);
}

function parseBlocks(lines, depth) {
  const blocks = [];
  let paragraph = null;
  const flush = () => {
    if (paragraph) {
      blocks.push({ type: "paragraph", inlines: parseInline(paragraph.join("\n").trim()) });
      paragraph = null;
    }
  };
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (BLANK.test(line)) {
      flush();
      i++;
      continue;
    }
    let m = FENCE_OPEN.exec(line);
    if (m) {
      flush();
      const indent = m[1].length;
      const fence = m[2];
      const close = new RegExp(`^ {0,3}${fence[0] === "`" ? "`" : "~"}{${fence.length},}[ \\t]*$`);
      const body = [];
      let closed = false;
      i++;
      while (i < lines.length) {
        if (close.test(lines[i])) {
          closed = true;
          i++;
          break;
        }
        body.push(stripIndent(lines[i], indent));
        i++;
      }
      blocks.push({ type: "code", lang: m[3].toLowerCase(), text: body.map((l) => `${l}\n`).join(""), closed });
      continue;
    }
    if (paragraph && !interrupts(line)) {
      paragraph.push(line);
      i++;
      continue;
    }
    if ((m = HEADING.exec(line))) {
      flush();
      blocks.push({ type: "heading", level: m[1].length, inlines: parseInline((m[2] ?? "").trim()) });
      i++;
      continue;
    }
    if (RULE.test(line)) {
      flush();
      blocks.push({ type: "rule" });
      i++;
      continue;
    }
    if (QUOTE.test(line)) {
      flush();
      const inner = [];
      while (i < lines.length && !BLANK.test(lines[i])) {
        const q = QUOTE.exec(lines[i]);
        if (q) inner.push(q[1]);
        else if (interrupts(lines[i])) break;
        else inner.push(lines[i]); // a lazy continuation of the quoted paragraph
        i++;
      }
      blocks.push({ type: "quote", blocks: depth < 8 ? parseBlocks(inner, depth + 1) : [] });
      continue;
    }
    const marker = listMarker(line);
    if (marker && depth < 8) {
      flush();
      const { list, next } = parseList(lines, i, marker, depth);
      blocks.push(list);
      i = next;
      continue;
    }
    paragraph = [line];
    i++;
  }
  flush();
  return blocks;
}

function parseList(lines, start, first, depth) {
  const list = { type: "list", ordered: first.ordered, start: first.start, items: [] };
  let i = start;
  while (i < lines.length) {
    const marker = listMarker(lines[i]);
    if (!marker || marker.ordered !== first.ordered || marker.kind !== first.kind) break;
    // The item's content starts after the marker and 1-4 spaces (one if more: indented code).
    const gap = marker.gap.length;
    const content = marker.width + (marker.rest.trim() === "" || gap > 4 ? 1 : Math.max(gap, 1));
    const item = [marker.rest];
    let previousBlank = false;
    i++;
    while (i < lines.length) {
      const line = lines[i];
      if (BLANK.test(line)) {
        item.push("");
        previousBlank = true;
        i++;
        continue;
      }
      if (indentOf(line) >= content) {
        item.push(line.slice(content));
      } else if (previousBlank || listMarker(line) || interrupts(line)) {
        break;
      } else {
        item.push(line.trimStart()); // a lazy continuation line
      }
      previousBlank = false;
      i++;
    }
    while (item.length && BLANK.test(item[item.length - 1])) item.pop();
    list.items.push(parseBlocks(item, depth + 1));
  }
  return { list, next: i };
}

// ---- inline ---------------------------------------------------------------------------------

function runLength(s, i, char) {
  let n = 0;
  while (s[i + n] === char) n++;
  return n;
}

/** The index of the backtick run of exactly `n` that closes a code span opened before `from`. */
function codeSpanEnd(s, from, n) {
  let j = from;
  while (j < s.length) {
    if (s[j] === "`") {
      const run = runLength(s, j, "`");
      if (run === n) return j;
      j += run;
    } else {
      j++;
    }
  }
  return -1;
}

const WHITESPACE = /\s/;
const PUNCT_OR_SYMBOL = /[\p{P}\p{S}]/u;

/** A run of * or _ at `i`, with CommonMark's rules for whether it may open or close. */
function delimiterRun(s, i, char) {
  const count = runLength(s, i, char);
  const before = i > 0 ? s[i - 1] : " ";
  const after = i + count < s.length ? s[i + count] : " ";
  const spaceBefore = WHITESPACE.test(before);
  const spaceAfter = WHITESPACE.test(after);
  const punctBefore = PUNCT_OR_SYMBOL.test(before);
  const punctAfter = PUNCT_OR_SYMBOL.test(after);
  const left = !spaceAfter && (!punctAfter || spaceBefore || punctBefore);
  const right = !spaceBefore && (!punctBefore || spaceAfter || punctAfter);
  const canOpen = char === "*" ? left : left && (!right || punctBefore); // snake_case stays
  const canClose = char === "*" ? right : right && (!left || punctAfter);
  return { type: "delim", char, count, orig: count, canOpen, canClose };
}

/** CommonMark's "process emphasis": pairs closers with the nearest fitting opener, wrapping
 *  what lies between in <em> or <strong>. `nodes` is changed in place. */
function processEmphasis(nodes) {
  const bottom = new Map(); // per kind of closer: below this index no opener will fit
  for (let c = 0; c < nodes.length; c++) {
    const closer = nodes[c];
    if (closer.type !== "delim" || !closer.canClose || closer.count === 0) continue;
    const key = `${closer.char}${closer.canOpen ? 1 : 0}${closer.orig % 3}`;
    let found = -1;
    for (let o = c - 1; o >= (bottom.get(key) ?? 0); o--) {
      const opener = nodes[o];
      if (opener.type !== "delim" || opener.char !== closer.char || !opener.canOpen || opener.count === 0) {
        continue;
      }
      const both = opener.canClose || closer.canOpen;
      if (both && (opener.orig + closer.orig) % 3 === 0 && (opener.orig % 3 !== 0 || closer.orig % 3 !== 0)) {
        continue; // the "rule of 3"
      }
      found = o;
      break;
    }
    if (found < 0) {
      bottom.set(key, c);
      continue;
    }
    const opener = nodes[found];
    const use = opener.count >= 2 && closer.count >= 2 ? 2 : 1;
    opener.count -= use;
    closer.count -= use;
    const inner = nodes.splice(found + 1, c - found - 1);
    nodes.splice(found + 1, 0, { type: use === 2 ? "strong" : "em", children: finish(inner) });
    for (const [k, v] of bottom) if (v > found) bottom.set(k, found + 1);
    c = found + 1; // the closer, next, again: it may have delimiters left
  }
}

/** Unused delimiters become text; neighbouring texts merge. */
function finish(nodes) {
  const out = [];
  for (const node of nodes) {
    const text = node.type === "delim" ? node.char.repeat(node.count) : node.type === "text" ? node.text : null;
    if (text === null) out.push(node);
    else if (text && out.length && out[out.length - 1].type === "text") out[out.length - 1].text += text;
    else if (text) out.push({ type: "text", text });
  }
  return out;
}

function linkAt(s, i) {
  // [text](address) with no nested brackets in the text.
  let j = i + 1;
  while (j < s.length && s[j] !== "]") {
    if (s[j] === "[") return null;
    if (s[j] === "\\") j++;
    j++;
  }
  if (s[j] !== "]" || s[j + 1] !== "(") return null;
  const close = s.indexOf(")", j + 2);
  if (close < 0) return null;
  const inside = s.slice(j + 2, close).trim();
  const href = inside.split(/\s+/)[0] ?? "";
  if (!href || /\s/.test(href.replace(/^<|>$/g, ""))) return null;
  return {
    node: { type: "link", href: href.replace(/^<|>$/g, ""), children: parseInline(s.slice(i + 1, j)) },
    end: close + 1,
  };
}

/** Inline Markdown -> [{type: "text", text} | {type: "code", text} | {type: "strong"|"em",
 *  children} | {type: "link", href, children} | {type: "break"}]. */
export function parseInline(s) {
  const out = [];
  let text = "";
  const pushText = () => {
    if (text) out.push({ type: "text", text });
    text = "";
  };
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === "\\" && s[i + 1] === "\n") {
      pushText();
      out.push({ type: "break" });
      i += 2;
      continue;
    }
    if (c === "\\" && i + 1 < s.length && PUNCTUATION.test(s[i + 1])) {
      text += s[i + 1];
      i += 2;
      continue;
    }
    if (c === " " && s.startsWith("  \n", i)) {
      pushText();
      out.push({ type: "break" });
      i += 3;
      continue;
    }
    if (c === "`") {
      const run = runLength(s, i, "`");
      const end = codeSpanEnd(s, i + run, run);
      if (end < 0) {
        text += s.slice(i, i + run);
        i += run;
        continue;
      }
      let code = s.slice(i + run, end).replace(/\n/g, " ");
      if (code.length > 2 && code[0] === " " && code[code.length - 1] === " " && code.trim()) {
        code = code.slice(1, -1);
      }
      pushText();
      out.push({ type: "code", text: code });
      i = end + run;
      continue;
    }
    if (c === "*" || c === "_") {
      const run = delimiterRun(s, i, c);
      pushText();
      out.push(run);
      i += run.count;
      continue;
    }
    if (c === "[") {
      const found = linkAt(s, i);
      if (found) {
        pushText();
        out.push(found.node);
        i = found.end;
        continue;
      }
    }
    text += c;
    i++;
  }
  pushText();
  processEmphasis(out);
  return finish(out);
}

/** The code blocks of a reply, in order (what the server hashes to link pastes). */
export function codeBlocks(source) {
  const found = [];
  const walk = (blocks) => {
    for (const block of blocks) {
      if (block.type === "code") found.push(block);
      else if (block.type === "list") block.items.forEach(walk);
      else if (block.type === "quote") walk(block.blocks);
    }
  };
  walk(parseMarkdown(source));
  return found;
}

// ---- DOM --------------------------------------------------------------------------------------

function inlineText(inlines) {
  return inlines
    .map((n) => (n.type === "text" || n.type === "code" ? n.text : n.children ? inlineText(n.children) : ""))
    .join("");
}

function renderInlines(doc, parent, inlines) {
  for (const node of inlines) {
    if (node.type === "text") {
      parent.append(doc.createTextNode(node.text));
    } else if (node.type === "code") {
      const code = doc.createElement("code");
      code.append(doc.createTextNode(node.text));
      parent.append(code);
    } else if (node.type === "strong" || node.type === "em") {
      const el = doc.createElement(node.type);
      renderInlines(doc, el, node.children);
      parent.append(el);
    } else if (node.type === "link") {
      renderInlines(doc, parent, node.children);
      if (inlineText(node.children).trim() !== node.href) {
        const href = doc.createElement("span");
        href.className = "md-href";
        href.append(doc.createTextNode(` (${node.href})`));
        parent.append(href);
      }
    } else if (node.type === "break") {
      parent.append(doc.createElement("br"));
    }
  }
}

/**
 * Appends the blocks to `parent` as DOM nodes. `codeBlock(block, index)` (optional) returns the
 * element for a fenced code block (the chat adds its Copy button there); the default is a
 * plain <pre><code>. Headings become <p class="md-heading"> so a reply never adds to the
 * page's outline.
 */
export function renderMarkdown(doc, parent, blocks, { codeBlock = null } = {}) {
  let codeIndex = 0;
  const render = (target, list, tight) => {
    for (const block of list) {
      if (block.type === "paragraph") {
        const el = doc.createElement(tight ? "span" : "p");
        if (tight) el.className = "md-line";
        renderInlines(doc, el, block.inlines);
        target.append(el);
      } else if (block.type === "heading") {
        const el = doc.createElement("p");
        el.className = `md-heading md-h${block.level}`;
        renderInlines(doc, el, block.inlines);
        target.append(el);
      } else if (block.type === "code") {
        const index = codeIndex++;
        if (codeBlock) {
          target.append(codeBlock(block, index));
        } else {
          const pre = doc.createElement("pre");
          const code = doc.createElement("code");
          code.append(doc.createTextNode(block.text));
          pre.append(code);
          target.append(pre);
        }
      } else if (block.type === "list") {
        const el = doc.createElement(block.ordered ? "ol" : "ul");
        if (block.ordered && block.start !== 1) el.setAttribute("start", String(block.start));
        for (const item of block.items) {
          const li = doc.createElement("li");
          // A one-paragraph item is written without a <p> around it (a "tight" list).
          const single = item.length === 1 && item[0].type === "paragraph";
          render(li, item, single);
          el.append(li);
        }
        target.append(el);
      } else if (block.type === "quote") {
        const el = doc.createElement("blockquote");
        render(el, block.blocks, false);
        target.append(el);
      } else if (block.type === "rule") {
        target.append(doc.createElement("hr"));
      }
    }
  };
  render(parent, blocks, false);
}
