// The CodeMirror 6 editor of one task. Deliberately without autocompletion or snippets: the
// editor is the same in every arm, and any code suggestions would be a form of help that the
// trial does not describe.

import { Annotation, Compartment, EditorState, Prec, Transaction } from "@codemirror/state";
import {
  EditorView,
  drawSelection,
  highlightActiveLine,
  highlightActiveLineGutter,
  highlightSpecialChars,
  keymap,
  lineNumbers,
} from "@codemirror/view";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import {
  bracketMatching,
  HighlightStyle,
  defaultHighlightStyle,
  indentOnInput,
  indentUnit,
  syntaxHighlighting,
} from "@codemirror/language";
import { highlightSelectionMatches, searchKeymap } from "@codemirror/search";
import { python } from "@codemirror/lang-python";

// CodeMirror's default colours, with the three below 4.5:1 on white darkened (WCAG AA; axe
// checks the page in tests/e2e/test_task_page.py). The chat's copies are in task.css.
const DARKER = { "#e40": "#b93a00", "#f00": "#c00", "#085": "#006b3c" };
const readableHighlightStyle = HighlightStyle.define(
  defaultHighlightStyle.specs.map((spec) => (DARKER[spec.color] ? { ...spec, color: DARKER[spec.color] } : spec)),
);

/** Marks transactions that replace the code from outside (another tab's version). */
export const external = Annotation.define();

const theme = EditorView.theme({
  "&": {
    fontSize: "0.92rem",
    border: "1px solid #9aa5b1",
    borderRadius: "6px",
    backgroundColor: "#ffffff",
    maxHeight: "38rem",
  },
  "&.cm-focused": { outline: "3px solid #f0b429", outlineOffset: "2px" },
  ".cm-scroller": {
    overflow: "auto",
    fontFamily: 'ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace',
    lineHeight: "1.5",
  },
  ".cm-content, .cm-gutter": { minHeight: "20rem" },
  ".cm-content": { padding: "0.5rem 0" },
  ".cm-gutters": {
    backgroundColor: "#f7f9fb",
    color: "#7b8794",
    borderRight: "1px solid #d9e2ec",
    borderRadius: "6px 0 0 6px",
  },
  ".cm-activeLine": { backgroundColor: "#f2f6fc" },
  ".cm-activeLineGutter": { backgroundColor: "#e4e9f0", color: "#1f2933" },
});

/**
 * Creates the editor inside `parent`. Tab indents (indentWithTab); Escape then Tab moves focus
 * out (CodeMirror's tab-focus escape hatch), as the visually hidden hint says. Ctrl/Cmd+Enter
 * runs, Ctrl/Cmd+Shift+Enter checks.
 */
export function createEditor({
  parent,
  doc,
  labelledBy,
  describedBy,
  onTransaction,
  onFocusChange,
  onRun,
  onCheck,
}) {
  const editable = new Compartment();
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc,
      extensions: [
        lineNumbers(),
        highlightActiveLineGutter(),
        highlightSpecialChars(),
        history(),
        drawSelection(),
        indentOnInput(),
        syntaxHighlighting(readableHighlightStyle, { fallback: true }),
        bracketMatching(),
        highlightActiveLine(),
        highlightSelectionMatches(),
        indentUnit.of("    "),
        EditorState.tabSize.of(4),
        python(),
        Prec.high(
          keymap.of([
            { key: "Mod-Enter", run: () => (onRun(), true), preventDefault: true },
            { key: "Shift-Mod-Enter", run: () => (onCheck(), true), preventDefault: true },
          ]),
        ),
        keymap.of([...defaultKeymap, ...historyKeymap, ...searchKeymap, indentWithTab]),
        editable.of([]),
        EditorView.contentAttributes.of({
          "aria-labelledby": labelledBy,
          "aria-describedby": describedBy,
          spellcheck: "false",
          autocorrect: "off",
          autocapitalize: "off",
          translate: "no",
        }),
        EditorView.updateListener.of((update) => {
          for (const tr of update.transactions) if (tr.docChanged) onTransaction(tr);
          if (update.focusChanged) onFocusChange(update.view.hasFocus);
        }),
        theme,
      ],
    }),
  });

  return {
    view,
    getCode: () => view.state.doc.toString(),
    /** Replaces the whole code, outside the undo history and marked `external`. */
    replaceCode(code) {
      view.dispatch({
        changes: { from: 0, to: view.state.doc.length, insert: code },
        annotations: [external.of(true), Transaction.addToHistory.of(false)],
      });
    },
    setReadOnly(readOnly) {
      view.dispatch({
        effects: editable.reconfigure(
          readOnly ? [EditorState.readOnly.of(true), EditorView.editable.of(false)] : [],
        ),
      });
    },
  };
}

export function userEventOf(tr) {
  return tr.annotation(Transaction.userEvent) ?? null;
}

export function isExternal(tr) {
  return tr.annotation(external) === true;
}
