package cli

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/term"
	"golang.org/x/text/width"
)

// defaultWidth is the table width when the output is not a terminal (and
// $COLUMNS is unset): what OpenClaw's CLI uses when piped.
const defaultWidth = 119

// terminalWidth is $COLUMNS, else the terminal's width when w is one,
// else defaultWidth.
func terminalWidth(env Env, w io.Writer) int {
	if n, err := strconv.Atoi(env.Getenv("COLUMNS")); err == nil && n > 20 {
		return n
	}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 20 {
			return cols
		}
	}
	return defaultWidth
}

// idColumns are the headers of columns an operator copies whole: request
// ids, into approve or reject, and webhook URLs (a documentation trial saw
// one wrapped inside its port beside a long last error). They are
// narrowed (and wrapped) only when every other column is as narrow as it
// goes. Node ids (64 characters) wrap like any cell: --node takes a
// prefix of 6.
var idColumns = map[string]bool{"Request": true, "URL": true}

// table renders rows in a box-drawn table no wider than width: columns
// take their content's width (in terminal columns), and when that is too
// wide the widest are narrowed and their cells wrapped, so nothing is cut
// off; columns of ids last.
func table(w io.Writer, width int, header []string, rows [][]string) {
	rows = visibleRows(rows)
	n := len(header)
	widths := make([]int, n)
	for i, h := range header {
		widths[i] = textWidth(h)
	}
	for _, r := range rows {
		for i, cell := range r {
			widths[i] = max(widths[i], textWidth(cell))
		}
	}
	// Each column takes 3 more: a border and a space either side.
	for total(widths)+3*n+1 > width {
		widest := -1
		for _, ids := range []bool{false, true} {
			for i := range widths {
				if idColumns[header[i]] == ids && widths[i] > 4 && (widest < 0 || widths[i] > widths[widest]) {
					widest = i
				}
			}
			if widest >= 0 {
				break
			}
		}
		if widest < 0 {
			break
		}
		widths[widest]--
	}
	line := func(left, mid, right string) {
		parts := make([]string, n)
		for i, cw := range widths {
			parts[i] = strings.Repeat("─", cw+2)
		}
		fmt.Fprintln(w, left+strings.Join(parts, mid)+right)
	}
	row := func(cells []string) {
		wrapped := make([][]string, n)
		height := 1
		for i := range n {
			wrapped[i] = wrap(cells[i], widths[i])
			height = max(height, len(wrapped[i]))
		}
		for l := range height {
			var b strings.Builder
			b.WriteString("│")
			for i := range n {
				text := ""
				if l < len(wrapped[i]) {
					text = wrapped[i][l]
				}
				b.WriteString(" " + text + strings.Repeat(" ", max(0, widths[i]-textWidth(text))) + " │")
			}
			fmt.Fprintln(w, b.String())
		}
	}
	line("┌", "┬", "┐")
	row(header)
	line("├", "┼", "┤")
	for _, r := range rows {
		row(r)
	}
	line("└", "┴", "┘")
}

// visibleRows is rows with every cell passed through visible.
func visibleRows(rows [][]string) [][]string {
	out := make([][]string, len(rows))
	for i, r := range rows {
		out[i] = make([]string, len(r))
		for j, cell := range r {
			out[i][j] = visible(cell)
		}
	}
	return out
}

func total(ws []int) int {
	t := 0
	for _, x := range ws {
		t += x
	}
	return t
}

// wrap breaks text into lines of at most width terminal columns, at
// spaces where it can and mid-word where it must.
func wrap(text string, width int) []string {
	if textWidth(text) <= width {
		return []string{text}
	}
	var lines []string
	var cur strings.Builder
	curWidth := 0
	flush := func() {
		lines = append(lines, cur.String())
		cur.Reset()
		curWidth = 0
	}
	for _, word := range strings.Fields(text) {
		ww := textWidth(word)
		if curWidth > 0 && curWidth+1+ww <= width {
			cur.WriteByte(' ')
			cur.WriteString(word)
			curWidth += 1 + ww
			continue
		}
		if curWidth > 0 {
			flush()
		}
		for _, r := range word {
			rw := runeWidth(r)
			if curWidth > 0 && curWidth+rw > width {
				flush()
			}
			cur.WriteRune(r)
			curWidth += rw
		}
	}
	if cur.Len() > 0 {
		flush()
	}
	return lines
}

// textWidth is how many terminal columns s takes: wide and fullwidth
// characters (CJK, most emoji) two, combining marks and invisible format
// characters none.
func textWidth(s string) int {
	n := 0
	for _, r := range s {
		n += runeWidth(r)
	}
	return n
}

func runeWidth(r rune) int {
	switch {
	case unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf) || r >= 0xFE00 && r <= 0xFE0F:
		return 0 // a combining mark, a zero-width (joiner) or a variation selector
	}
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return 2
	}
	return 1
}

// ago says how long before now ms was, as OpenClaw's CLI does: 6s ago,
// 3m ago, 2h ago, 4d ago.
func ago(now time.Time, ms int64) string {
	if ms == 0 {
		return ""
	}
	d := now.Sub(time.UnixMilli(ms))
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", max(0, int(d.Seconds())))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}
