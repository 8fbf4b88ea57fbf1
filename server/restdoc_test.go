package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRESTDocExamples runs every curl example of docs/rest.md, in order,
// against a live server and checks the status each one documents.
func TestRESTDocExamples(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "docs", "rest.md"))
	if err != nil {
		t.Fatal(err)
	}
	examples := curlExamples(string(raw))
	if len(examples) < 17 {
		t.Fatalf("found %d curl examples in docs/rest.md", len(examples))
	}
	ts := startServer(t)
	vars := map[string]string{"PAIRGATE": ts.url, "TOKEN": testToken}
	for _, ex := range examples {
		args := shellWords(ex.command, vars)
		req, timeout := curlRequest(t, args)
		client := &http.Client{Timeout: timeout}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", ex.command, err)
		}
		body, _ := io.ReadAll(resp.Body) // a --max-time stream ends by timeout
		resp.Body.Close()
		if resp.StatusCode != ex.status {
			t.Fatalf("%s\n  = %d %s, documented %d", ex.command, resp.StatusCode, body, ex.status)
		}
		// Later examples use what earlier ones returned.
		var out struct {
			Request struct{ RequestID string } `json:"request"`
			Node    struct{ Token string }     `json:"node"`
		}
		if json.Unmarshal(body, &out) == nil {
			if out.Request.RequestID != "" {
				vars["REQUEST_ID"] = out.Request.RequestID
			}
			if out.Node.Token != "" {
				vars["NODE_TOKEN"] = out.Node.Token
			}
		}
		if strings.Contains(ex.command, "/events") && !strings.Contains(string(body), "id: 1\nevent: node.pair.requested\n") {
			t.Fatalf("event stream example got %q", body)
		}
	}
}

type curlExample struct {
	command string
	status  int
}

var statusLine = regexp.MustCompile(`^# → (\d{3})`)

// curlExamples finds each curl command (with its continuation lines) in
// the sh blocks and the status documented on the "# → NNN" line after it.
func curlExamples(doc string) []curlExample {
	var out []curlExample
	lines := strings.Split(doc, "\n")
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "curl ") {
			continue
		}
		cmd := lines[i]
		for strings.HasSuffix(cmd, "\\") && i+1 < len(lines) {
			i++
			cmd = strings.TrimSuffix(cmd, "\\") + " " + strings.TrimSpace(lines[i])
		}
		if i+1 < len(lines) {
			if m := statusLine.FindStringSubmatch(lines[i+1]); m != nil {
				status, _ := strconv.Atoi(m[1])
				out = append(out, curlExample{command: cmd, status: status})
			}
		}
	}
	return out
}

// shellWords splits a command as sh would: quotes, and $VAR expansion
// outside single quotes.
func shellWords(cmd string, vars map[string]string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	quote := byte(0)
	for i := 0; i < len(cmd); i++ {
		ch := cmd[i]
		switch {
		case quote == '\'':
			if ch == '\'' {
				quote = 0
			} else {
				cur.WriteByte(ch)
			}
		case ch == '\'' || ch == '"':
			if quote == ch {
				quote = 0
			} else if quote == 0 {
				quote = ch
			} else {
				cur.WriteByte(ch)
			}
			inWord = true
		case ch == '$':
			j := i + 1
			for j < len(cmd) && (cmd[j] == '_' || cmd[j] >= 'A' && cmd[j] <= 'Z') {
				j++
			}
			cur.WriteString(vars[cmd[i+1:j]])
			i = j - 1
			inWord = true
		case ch == ' ' && quote == 0:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// curlRequest understands the curl flags the docs use.
func curlRequest(t *testing.T, args []string) (*http.Request, time.Duration) {
	t.Helper()
	method, url, body := "", "", ""
	timeout := 10 * time.Second
	header := http.Header{}
	for i := 1; i < len(args); i++ {
		switch args[i] {
		case "-s", "-N":
		case "-X":
			i++
			method = args[i]
		case "-H":
			i++
			k, v, _ := strings.Cut(args[i], ": ")
			header.Set(k, v)
		case "-d":
			i++
			body = args[i]
		case "--max-time":
			i++
			secs, _ := strconv.Atoi(args[i])
			timeout = time.Duration(secs) * time.Second
		default:
			if strings.HasPrefix(args[i], "-") {
				t.Fatalf("curl flag %s is not understood by this test", args[i])
			}
			url = args[i]
		}
	}
	if method == "" {
		method = "GET"
		if body != "" {
			method = "POST"
		}
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" && header.Get("Content-Type") == "" {
		header.Set("Content-Type", "application/x-www-form-urlencoded") // as curl -d sends
	}
	req.Header = header
	return req, timeout
}
