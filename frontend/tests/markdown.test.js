import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { codeBlocks, parseInline, parseMarkdown, renderMarkdown } from "../src/markdown.js";

// ---- a minimal DOM: enough to see what renderMarkdown builds (and that it never parses HTML) --

class FakeText {
  constructor(text) {
    this.text = text;
  }
  get textContent() {
    return this.text;
  }
  html() {
    return this.text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }
}

class FakeElement {
  constructor(tag) {
    this.tagName = tag.toUpperCase();
    this.children = [];
    this.attributes = {};
    this.className = "";
  }
  append(...nodes) {
    for (const node of nodes) {
      if (node instanceof FakeFragment) this.children.push(...node.children);
      else this.children.push(node);
    }
  }
  setAttribute(name, value) {
    this.attributes[name] = String(value);
  }
  get textContent() {
    return this.children.map((c) => c.textContent).join("");
  }
  set innerHTML(_) {
    throw new Error("innerHTML must never be used");
  }
  html() {
    const tag = this.tagName.toLowerCase();
    const attrs = Object.entries(this.attributes).map(([k, v]) => ` ${k}="${v}"`).join("");
    const cls = this.className ? ` class="${this.className}"` : "";
    return `<${tag}${cls}${attrs}>${this.children.map((c) => c.html()).join("")}</${tag}>`;
  }
}

class FakeFragment extends FakeElement {
  constructor() {
    super("#fragment");
  }
  html() {
    return this.children.map((c) => c.html()).join("");
  }
}

const doc = {
  createElement: (tag) => new FakeElement(tag),
  createTextNode: (text) => new FakeText(text),
};

function html(markdown, options) {
  const root = new FakeFragment();
  renderMarkdown(doc, root, parseMarkdown(markdown), options);
  return root.html();
}

// ---- blocks -----------------------------------------------------------------------------------

test("paragraphs, headings, rules and quotes", () => {
  assert.equal(html("One\nline.\n\nTwo."), "<p>One\nline.</p><p>Two.</p>");
  assert.equal(html("## Steps\nThen"), '<p class="md-heading md-h2">Steps</p><p>Then</p>');
  assert.equal(html("a\n\n---\n\nb"), "<p>a</p><hr></hr><p>b</p>");
  assert.equal(html("> quoted\nlazy\n\nafter"), "<blockquote><p>quoted\nlazy</p></blockquote><p>after</p>");
});

test("fenced code blocks keep their text exactly, with the language", () => {
  const reply = "Here:\n\n```python\nasync def main():\n    pass\n```\nDone.";
  const blocks = parseMarkdown(reply);
  assert.deepEqual(blocks[1], {
    type: "code",
    lang: "python",
    text: "async def main():\n    pass\n",
    closed: true,
  });
  assert.equal(blocks[2].type, "paragraph");
  // A paragraph is interrupted by a fence without a blank line.
  assert.equal(parseMarkdown("Text\n~~~\nx\n~~~")[1].text, "x\n");
  // Longer fences may contain shorter ones.
  assert.equal(parseMarkdown("````md\n```\ninner\n```\n````")[0].text, "```\ninner\n```\n");
});

test("an unclosed fence (a reply still streaming) is a code block to the end", () => {
  const blocks = parseMarkdown("Start\n```python\nimport trio\nasync def");
  assert.deepEqual(blocks[1], { type: "code", lang: "python", text: "import trio\nasync def\n", closed: false });
});

test("code blocks are what the server hashes (trials/assistant/replies.py CODE_BLOCK_RE)", () => {
  // The scripted assistant's solution answer: intro, blank line, a python block, newline.
  const solution = 'import trio\n\n\nasync def main():\n    print("done")\n\n\nif __name__ == "__main__":\n    trio.run(main)';
  const reply = `Here is a complete solution for this task:\n\n\`\`\`python\n${solution}\n\`\`\`\n`;
  const serverBlock = /```[a-zA-Z0-9_+-]*\n([\s\S]*?)```/.exec(reply)[1];
  const [block] = codeBlocks(reply);
  assert.equal(block.text, serverBlock);
  const sha = (t) => createHash("sha256").update(t, "utf8").digest("hex");
  assert.equal(sha(block.text), sha(`${solution}\n`));
});

test("bullet and ordered lists, nested, with code inside an item", () => {
  assert.equal(html("- one\n- two"), '<ul><li><span class="md-line">one</span></li><li><span class="md-line">two</span></li></ul>');
  assert.equal(html("3. c\n4. d"), '<ol start="3"><li><span class="md-line">c</span></li><li><span class="md-line">d</span></li></ol>');
  const nested = parseMarkdown("1. First\n   - inner\n2. Second\n\n   more");
  assert.equal(nested.length, 1);
  assert.equal(nested[0].items.length, 2);
  assert.equal(nested[0].items[0][1].type, "list");
  assert.equal(nested[0].items[1].length, 2); // "Second" and "more" (indented: same item)
  const withCode = parseMarkdown("- Use this:\n\n  ```python\n  x = 1\n  ```\n- next");
  assert.equal(withCode[0].items[0][1].text, "x = 1\n");
  assert.equal(withCode[0].items.length, 2);
  // A lazy continuation line belongs to the item; a non-indented line after a blank does not.
  assert.equal(parseMarkdown("- a\nb\n\nc").length, 2);
  // An ordered list that does not start at 1 does not interrupt a paragraph ("in 2020. It").
  assert.equal(parseMarkdown("Released in\n2020. It was").length, 1);
});

test("the scripted assistant's material renders", () => {
  const text = `Two common mistakes with Trio:

- *"RuntimeWarning: coroutine ... was never awaited"*: an async function was called without
  \`await\` (or passed as \`greeter(...)\` to \`start_soon\`).
- *"TypeError"*: \`start_soon\` was given \`greeter("alice", 0.1, 3)\`.`;
  const out = html(text);
  assert.match(out, /^<p>Two common mistakes with Trio:<\/p><ul><li><span class="md-line"><em>"RuntimeWarning: coroutine \.\.\. was never awaited"<\/em>: an async function was called without\n<code>await<\/code>/);
  assert.match(out, /<code>start_soon<\/code>\)\.<\/span><\/li><li>/);
});

// ---- inline -----------------------------------------------------------------------------------

test("inline code, bold and italic", () => {
  assert.deepEqual(parseInline("use `trio.sleep` now"), [
    { type: "text", text: "use " },
    { type: "code", text: "trio.sleep" },
    { type: "text", text: " now" },
  ]);
  assert.equal(html("a **bold** and *it* and __b2__ and _i2_"), "<p>a <strong>bold</strong> and <em>it</em> and <strong>b2</strong> and <em>i2</em></p>");
  assert.equal(html("***both***"), "<p><em><strong>both</strong></em></p>");
  assert.equal(html("**bold with `code` inside**"), "<p><strong>bold with <code>code</code> inside</strong></p>");
  assert.equal(html("**bold *it***"), "<p><strong>bold <em>it</em></strong></p>");
  assert.equal(html("*a **b** c*"), "<p><em>a <strong>b</strong> c</em></p>");
  assert.equal(html("`` a`b ``"), "<p><code>a`b</code></p>");
});

test("snake_case, lone stars and unclosed backticks stay text", () => {
  assert.equal(html("open_nursery and start_soon_x"), "<p>open_nursery and start_soon_x</p>");
  assert.equal(html("2 * 3 * 4"), "<p>2 * 3 * 4</p>");
  assert.equal(html("a ` b"), "<p>a ` b</p>");
  assert.equal(html("**not closed"), "<p>**not closed</p>");
  assert.equal(html("\\*escaped\\*"), "<p>*escaped*</p>");
  assert.equal(html("`**not bold**`"), "<p><code>**not bold**</code></p>");
});

test("links show their text and address, never a link element", () => {
  assert.equal(html("see [the docs](https://trio.readthedocs.io) now"), '<p>see the docs<span class="md-href"> (https://trio.readthedocs.io)</span> now</p>');
  assert.equal(html("[https://x.org](https://x.org)"), "<p>https://x.org</p>");
  assert.ok(!html("[x](javascript:alert(1))").includes("<a"));
});

test("HTML in a reply is text, never markup", () => {
  const out = html('<script>alert(1)</script>\n\n<img src=x onerror="alert(2)">\n\n```html\n<b>x</b>\n```');
  assert.ok(!out.includes("<script>"));
  assert.ok(!out.includes("<img"));
  assert.ok(out.includes("&lt;script&gt;alert(1)&lt;/script&gt;"));
  assert.ok(out.includes("&lt;b&gt;x&lt;/b&gt;"));
});

test("a custom code block renderer gets each block and its index", () => {
  const seen = [];
  html("```\na\n```\n\n- ```py\n  b\n  ```", {
    codeBlock: (block, index) => {
      seen.push([index, block.lang, block.text]);
      return doc.createElement("div");
    },
  });
  assert.deepEqual(seen, [
    [0, "", "a\n"],
    [1, "py", "b\n"],
  ]);
});

test("parsing is quick on long and adversarial replies", () => {
  const started = performance.now();
  parseMarkdown("*a _b `c ".repeat(3000));
  parseMarkdown(`${"- item **bold** and `code`\n".repeat(2000)}\n\`\`\`python\n${"x = 1\n".repeat(5000)}\`\`\``);
  assert.ok(performance.now() - started < 2000);
});
