package cli

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/term"
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

// table renders rows in a box-drawn table no wider than width: columns
// take their content's width, and when that is too wide the widest are
// narrowed and their cells wrapped, so nothing is cut off.
func table(w io.Writer, width int, header []string, rows [][]string) {
	rows = visibleRows(rows)
	n := len(header)
	widths := make([]int, n)
	for i, h := range header {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, r := range rows {
		for i, cell := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	// Each column takes 3 more: a border and a space either side.
	for total(widths)+3*n+1 > width {
		widest := 0
		for i := range widths {
			if widths[i] > widths[widest] {
				widest = i
			}
		}
		if widths[widest] <= 4 {
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
				b.WriteString(" " + text + strings.Repeat(" ", widths[i]-utf8.RuneCountInString(text)) + " │")
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

// wrap breaks text into lines of at most width runes, at spaces where it
// can and mid-word where it must.
func wrap(text string, width int) []string {
	if utf8.RuneCountInString(text) <= width {
		return []string{text}
	}
	var lines []string
	var cur []rune
	for _, word := range strings.Fields(text) {
		wr := []rune(word)
		if len(cur) > 0 && len(cur)+1+len(wr) <= width {
			cur = append(append(cur, ' '), wr...)
			continue
		}
		if len(cur) > 0 {
			lines = append(lines, string(cur))
			cur = nil
		}
		for len(wr) > width {
			lines = append(lines, string(wr[:width]))
			wr = wr[width:]
		}
		cur = wr
	}
	if len(cur) > 0 {
		lines = append(lines, string(cur))
	}
	return lines
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
