// Key names for QMP send-key: "ctrl-alt-delete" combos and text typed as key presses.

const SHIFTED: Record<string, string> = {
  '!': '1', '@': '2', '#': '3', $: '4', '%': '5', '^': '6', '&': '7', '*': '8', '(': '9', ')': '0',
  _: 'minus', '+': 'equal', '{': 'bracket_left', '}': 'bracket_right', '|': 'backslash', ':': 'semicolon',
  '"': 'apostrophe', '~': 'grave_accent', '<': 'comma', '>': 'dot', '?': 'slash',
};
const PLAIN: Record<string, string> = {
  ' ': 'spc', '\n': 'ret', '\t': 'tab', '-': 'minus', '=': 'equal', '[': 'bracket_left', ']': 'bracket_right',
  '\\': 'backslash', ';': 'semicolon', "'": 'apostrophe', '`': 'grave_accent', ',': 'comma', '.': 'dot', '/': 'slash',
};
const ALIASES: Record<string, string> = { enter: 'ret', return: 'ret', space: 'spc', escape: 'esc', del: 'delete', control: 'ctrl' };

/** QMP qcodes for one combo: "ctrl-alt-delete" -> ["ctrl", "alt", "delete"]. */
export function comboToQcodes(combo: string): string[] {
  return combo.split(/-(?=.)/).map((k) => ALIASES[k.toLowerCase()] ?? k.toLowerCase());
}

/** The combos that type `text` on a US keyboard; throws on characters it cannot type. */
export function textToCombos(text: string): string[][] {
  return [...text].map((ch) => {
    if (/^[a-z0-9]$/.test(ch)) return [ch];
    if (/^[A-Z]$/.test(ch)) return ['shift', ch.toLowerCase()];
    if (PLAIN[ch]) return [PLAIN[ch]];
    if (SHIFTED[ch]) return ['shift', SHIFTED[ch]];
    throw new RangeError(`cannot type ${JSON.stringify(ch)} as key presses (US layout); send a combo with sendKeys()`);
  });
}
