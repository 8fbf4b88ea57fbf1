package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/chromedp/chromedp"

	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/db/locktest"
	"github.com/pairgate/pairgate/internal/confusable"
)

func TestUIFiles(t *testing.T) {
	ts := startServer(t)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string, header ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", ts.url+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, c := range []struct{ path, ctype string }{
		{"/ui/", "text/html; charset=utf-8"},
		{"/ui/app.js", "text/javascript; charset=utf-8"},
		{"/ui/rules.js", "text/javascript; charset=utf-8"}, // made from internal/confusable
		{"/ui/app.css", "text/css; charset=utf-8"},
	} {
		resp := get(c.path)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != c.ctype {
			t.Fatalf("%s = %d %q", c.path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("%s without its security headers: %v", c.path, resp.Header)
		}
		// Revalidation: the ETag names the embedded content.
		if again := get(c.path, "If-None-Match", resp.Header.Get("ETag")); again.StatusCode != http.StatusNotModified {
			t.Fatalf("%s with its ETag = %d, want 304", c.path, again.StatusCode)
		}
	}
	for path, want := range map[string]int{"/ui/nope.js": 404, "/ui/../healthz": 404, "/ui/index.html.bak": 404} {
		if resp := get(path); resp.StatusCode != want {
			t.Fatalf("%s = %d, want %d", path, resp.StatusCode, want)
		}
	}
	// /ui and a browser opening the server's address land on the page; a
	// plain client on "/" still learns that it is a WebSocket endpoint.
	for _, c := range []struct {
		path, accept string
		status       int
		location     string
	}{
		{"/ui", "", 302, "ui/"},
		{"/", "text/html,application/xhtml+xml", 302, "ui/"},
		{"/", "", http.StatusUpgradeRequired, ""},
	} {
		resp := get(c.path, "Accept", c.accept)
		if resp.StatusCode != c.status || resp.Header.Get("Location") != c.location {
			t.Fatalf("GET %s (Accept %q) = %d %q", c.path, c.accept, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

// chromium finds the browser for the page tests. Without one they are
// skipped on a developer's machine, but CI (CI set) must have it: .ci/run
// installs Debian's chromium.
func chromium(t *testing.T) string {
	for _, p := range []string{os.Getenv("PAIRGATE_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	missingPeer(t, "no Chromium for the operator page test: install Debian's chromium (or set PAIRGATE_CHROMIUM)")
	return ""
}

// browser starts a headless Chromium for one test, with no network beyond
// what the page asks for, and stops it when the test ends.
func browser(t *testing.T) context.Context {
	path := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		cancel()
	})
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("start %s: %v", path, err)
	}
	return bctx
}

// page drives the browser; every step is bounded, and a failed one shows
// what the page said.
type page struct {
	t   *testing.T
	ctx context.Context
}

func (p page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v\npage:\n%s", what, err, p.text())
	}
}

func (p page) text() string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	return s
}

func (p page) eval(expr string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		p.t.Fatalf("%s: %v", expr, err)
	}
	return s
}

// until waits for a JavaScript condition to hold.
func (p page) until(what, expr string) {
	p.t.Helper()
	p.do(what, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(15*time.Second))(ctx, tg)
		return chromedp.Void{}, err
	})
}

// assigned says whether r has a category in Go's Unicode tables (a newer
// browser's may know more).
func assigned(r rune) bool {
	for _, table := range unicode.Categories {
		if unicode.Is(table, r) {
			return true
		}
	}
	return false
}

func css(format string, args ...any) chromedp.CSS { return chromedp.CSS(fmt.Sprintf(format, args...)) }

// TestOperatorPageInChromium signs in, decides, renames and removes through
// the page in a real browser, and checks each effect in the store.
func TestOperatorPageInChromium(t *testing.T) {
	b := browser(t)
	ts := startServer(t)
	store := ts.byName["default"].Store
	request := ts.requester(t)
	// Node-supplied text is only ever text: this name must show as typed.
	const evil = `<img src=x onerror="window.__xss=1">`
	kitchen := request(`{"nodeId":"kitchen-ipad","displayName":"Kitchen iPad","platform":"iOS"}`)
	pixel := request(`{"nodeId":"pixel-8","displayName":"Pixel 8"}`)
	sneaky := request(`{"nodeId":"sneaky","displayName":` + strconv.Quote(evil) + `}`)

	p := page{t: t, ctx: b}
	p.do("open the server's address", chromedp.Navigate(ts.url+"/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	if path := p.eval(`location.pathname`); path != "/ui/" {
		t.Fatalf("a browser on / landed on %s", path)
	}

	p.do("sign in with a wrong token",
		chromedp.SendKeys(chromedp.CSS("#token"), "not-the-token"),
		chromedp.Click(chromedp.CSS("#signin-button")))
	p.until("the refusal", `document.querySelector('#signin-error').textContent.includes('opens no profile')`)

	p.do("sign in",
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#token').value = ''`),
		chromedp.SendKeys(chromedp.CSS("#token"), testToken),
		chromedp.Click(chromedp.CSS("#signin-button")),
		chromedp.WaitVisible(css(`#pending tr[data-request-id=%q]`, kitchen)))
	p.until("three pending rows", `document.querySelectorAll('#pending tbody tr').length === 3`)
	if got := p.eval(fmt.Sprintf(`document.querySelector('tr[data-request-id=%q] td.name .label').textContent`, sneaky)); got != evil {
		t.Fatalf("the sneaky name shows as %q", got)
	}
	// Control and bidi-override characters (in data imported before they
	// were refused) show as escapes, as in the CLI.
	if got := p.eval(`cell('a\u001b[2K\u202eb\u007f\u0085', '').textContent + ' ' + cell('', '', '', 'x\u2066').title`); got != `a\x1b[2K\u202eb\x7f\u0085 x\u2066` {
		t.Fatalf("a cell shows control characters as %q", got)
	}
	if got := p.eval(`String(document.querySelectorAll('img').length) + ' ' + typeof window.__xss`); got != "0 undefined" {
		t.Fatalf("a node's name became markup: %s", got)
	}
	if strings.Contains(p.eval(`location.href`), testToken) {
		t.Fatal("the operator token is in the page's address")
	}

	// Approve: the page shows the new token once, and it verifies.
	p.do("approve Kitchen iPad",
		chromedp.Click(css(`#pending tr[data-request-id=%q] button.approve`, kitchen)),
		chromedp.WaitVisible(chromedp.CSS(".notice.token code.token-value")),
		chromedp.WaitVisible(css(`#nodes tr[data-node-id="kitchen-ipad"]`)),
		chromedp.WaitNotPresent(css(`#pending tr[data-request-id=%q]`, kitchen)))
	token := p.eval(`document.querySelector('.notice.token code.token-value').textContent`)
	if v, err := store.Verify(context.Background(), "kitchen-ipad", token); err != nil || !v.OK {
		t.Fatalf("the token the page showed (%d chars) does not verify: %+v %v", len(token), v, err)
	}

	p.do("reject Pixel 8",
		chromedp.Click(css(`#pending tr[data-request-id=%q] button.reject`, pixel)),
		chromedp.WaitNotPresent(css(`#pending tr[data-request-id=%q]`, pixel)))
	if st, err := store.RequestStatus(context.Background(), pixel); err != nil || st.Status != db.StatusRejected {
		t.Fatalf("pixel-8 after reject in the page: %+v %v", st, err)
	}

	// Live: a request made elsewhere appears without a reload.
	p.until("the event stream", `document.querySelector('#live').textContent === 'live'`)
	garage := request(`{"nodeId":"garage-pi","displayName":"Garage Pi"}`)
	p.do("a new request arrives by itself", chromedp.WaitVisible(css(`#pending tr[data-request-id=%q]`, garage)))

	p.do("rename Kitchen iPad",
		chromedp.Click(css(`#nodes tr[data-node-id="kitchen-ipad"] button.rename`)),
		chromedp.SetValue(css(`#nodes tr[data-node-id="kitchen-ipad"] form.rename input`), "Den iPad"),
		chromedp.Click(css(`#nodes tr[data-node-id="kitchen-ipad"] button.save`)))
	p.until("the new name", `document.querySelector('#nodes tr[data-node-id="kitchen-ipad"] td.name').textContent === 'Den iPad'`)
	if n, err := store.Node(context.Background(), "kitchen-ipad"); err != nil || n.DisplayName != "Den iPad" {
		t.Fatalf("after rename in the page: %+v %v", n, err)
	}
	// Another device asking under that name in look-alike letters is
	// told apart from the node, under its name.
	copycat := request(`{"nodeId":"copycat","displayName":"Den \u0456P\u0430d"}`)
	p.until("the look-alike warning", fmt.Sprintf(`(document.querySelector('#pending tr[data-request-id=%q] .lookalike') || {}).textContent === '⚠ named like the paired node Den iPad (kitchen-ipad), but another device'`, copycat))
	if got := p.eval(`String(document.querySelectorAll('#pending .lookalike').length)`); got != "1" {
		t.Fatalf("%s look-alike warnings, want the copycat's alone", got)
	}
	// The page's rules are the CLI's (internal/confusable).
	names := []string{"Kitchen iPad", "Kitchen іPаd", "KITCHEN IPAD", "Kítchen iPad", "Ｋｉｔｃｈｅｎ ｉＰａｄ", "Kitchen\u200b iPad", "Mode\u043c", "Rnodem",
		"Pi 10", "Pl 1o", "VVoods", "Wοοds", "Pixel 8", "🔥 — 🔥", "İstanbul", "ǅemal", "Straße", "ﬁle", "Ⅻ", "x\u0301", "١٢٣", "Ωmega"}
	for _, name := range names {
		quoted, _ := json.Marshal(name)
		if got, want := p.eval(`skeleton(`+string(quoted)+`)`), confusable.Skeleton(name); got != want {
			t.Errorf("skeleton(%q): the page says %q, the CLI %q", name, got, want)
		}
	}
	// So are its escapes: every code point assigned in Go's Unicode that
	// the page shows escaped is Invisible, and only those.
	escaped := map[rune]bool{}
	list, err := chromedp.Run(b, chromedp.Evaluate[[]int](`(() => { const out = []; for (let n = 0; n < 0xe1000; n++) {
		if (n >= 0xd800 && n < 0xe000 || n >= 0x30000 && n < 0xe0000) continue;
		const c = String.fromCodePoint(n); if (visible(c) !== c) out.push(n); } return out; })()`))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range list {
		escaped[rune(n)] = true
	}
	for r := rune(0); r < 0xe1000; r++ {
		if r >= 0xd800 && r < 0xe000 || r >= 0x30000 && r < 0xe0000 || !assigned(r) {
			continue
		}
		if escaped[r] != confusable.Invisible(r) {
			t.Errorf("U+%04X: the page escapes it %v, the CLI %v", r, escaped[r], confusable.Invisible(r))
		}
	}

	p.do("reject the copycat",
		chromedp.Click(css(`#pending tr[data-request-id=%q] button.reject`, copycat)),
		chromedp.WaitNotPresent(css(`#pending tr[data-request-id=%q]`, copycat)))

	// A name the server refuses comes back in the form as typed, to mend.
	const refused, refusedJS = "Den iPad \u0007 2", `"Den iPad \u0007 2"`
	p.do("rename to a name the server refuses",
		chromedp.Click(css(`#nodes tr[data-node-id="kitchen-ipad"] button.rename`)),
		chromedp.SetValue(css(`#nodes tr[data-node-id="kitchen-ipad"] form.rename input`), refused),
		chromedp.Click(css(`#nodes tr[data-node-id="kitchen-ipad"] button.save`)))
	p.until("the refusal, naming what failed", `[...document.querySelectorAll('.notice.error')].some(n => n.textContent.includes('Rename kitchen-ipad failed: ') && n.textContent.includes('displayName'))`)
	p.until("the form back with the typed name", `(document.querySelector('#nodes tr[data-node-id="kitchen-ipad"] form.rename input') || {}).value === `+refusedJS)
	p.do("cancel it", chromedp.Click(css(`#nodes tr[data-node-id="kitchen-ipad"] button.cancel`)))
	p.until("the kept name", `document.querySelector('#nodes tr[data-node-id="kitchen-ipad"] td.name').textContent === 'Den iPad'`)
	if n, err := store.Node(context.Background(), "kitchen-ipad"); err != nil || n.DisplayName != "Den iPad" {
		t.Fatalf("after a refused rename in the page: %+v %v", n, err)
	}

	// Remove asks for a second click, and stays armed across a live redraw
	// between the two.
	p.do("remove, first click",
		chromedp.Click(css(`#nodes tr[data-node-id="kitchen-ipad"] button.remove`)),
		chromedp.WaitVisible(css(`#nodes tr[data-node-id="kitchen-ipad"] button.remove.confirm`)))
	if _, err := store.Node(context.Background(), "kitchen-ipad"); err != nil {
		t.Fatalf("one click removed the node: %v", err)
	}
	attic := request(`{"nodeId":"attic-pi","displayName":"Attic Pi"}`)
	p.do("a live event redraws the lists", chromedp.WaitVisible(css(`#pending tr[data-request-id=%q]`, attic)))
	p.do("remove, confirmed",
		chromedp.Click(css(`#nodes tr[data-node-id="kitchen-ipad"] button.remove.confirm`)),
		chromedp.WaitNotPresent(css(`#nodes tr[data-node-id="kitchen-ipad"]`)))
	if v, _ := store.Verify(context.Background(), "kitchen-ipad", token); v.OK {
		t.Fatal("the removed node's token still verifies")
	}

	// The tab keeps its sign-in across a reload; signing out forgets it.
	p.do("reload", chromedp.Navigate(ts.url+"/ui/"), chromedp.WaitVisible(css(`#pending tr[data-request-id=%q]`, garage)))
	p.do("sign out", chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#token")))
	if got := p.eval(`String(sessionStorage.getItem('pairgate.operatorToken'))`); got != "null" {
		t.Fatalf("the token outlived sign-out: %q", got)
	}

	// Another profile's token opens only that profile.
	p.do("sign in to work",
		chromedp.SendKeys(chromedp.CSS("#token"), "work-token"),
		chromedp.Click(chromedp.CSS("#signin-button")),
		chromedp.WaitVisible(chromedp.CSS("#pending-empty")))
	if got := p.eval(`[...document.querySelectorAll('#profile option')].map(o => o.value).join(',') + ' ' + location.hash`); got != "work #profile=work" {
		t.Fatalf("work's token shows %q", got)
	}
	// Empty lists are a sentence each, without table headers.
	if got := p.eval(`['#pending', '#nodes', '#pending-empty', '#nodes-empty'].map(s => document.querySelector(s).checkVisibility()).join(' ')`); got != "false false true true" {
		t.Fatalf("empty lists: tables and sentences visible = %s", got)
	}
}

// TestOperatorPageOnPhoneAndDesktop uses the page at a phone's width and a
// desktop's: nothing is wider than the screen, a token notice outlives
// later actions and live events until dismissed, and a node is approved
// with the keyboard alone. With PAIRGATE_SCREENSHOTS=DIR it saves what it
// saw there (docs/img/ui-*.png are made this way).
func TestOperatorPageOnPhoneAndDesktop(t *testing.T) {
	for _, size := range []struct {
		name          string
		width, height int64
		mobile        bool
	}{
		{"phone", 390, 844, true},
		{"desktop", 1280, 800, false},
	} {
		t.Run(size.name, func(t *testing.T) {
			b := browser(t)
			ts := startServer(t)
			store := ts.byName["default"].Store
			request := func(node, name, platform, ip string) string {
				var res db.RequestResult
				body := fmt.Sprintf(`{"nodeId":%q,"displayName":%q,"platform":%q,"remoteIp":%q}`, node, name, platform, ip)
				ts.mustAPI(t, 201, "POST", base+"/requests", body, &res)
				return res.Request.RequestID
			}
			kitchen := request("kitchen-ipad", "Kitchen iPad", "iPadOS 17.2", "fd7a:115c:a1e0:ab12:4843:cd96:6258:b240")
			hall := request("hall-display-with-a-rather-long-node-identifier", "Hall display in the upstairs corridor", "linux", "192.168.178.201")
			porch := request("porch-cam", "Porch camera", "android", "10.0.0.17")

			opts := []chromedp.EmulateViewportOption{}
			if size.mobile {
				opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulateScale(2))
			}
			p := page{t: t, ctx: b}
			p.do("open the page", chromedp.EmulateViewport(size.width, size.height, opts...),
				chromedp.Navigate(ts.url+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#token")))
			p.do("sign in",
				chromedp.SendKeys(chromedp.CSS("#token"), testToken),
				chromedp.Click(chromedp.CSS("#signin-button")),
				chromedp.WaitVisible(css(`#pending tr[data-request-id=%q]`, kitchen)))
			p.until("three pending rows", `document.querySelectorAll('#pending tbody tr').length === 3`)
			notWider := func(when string) {
				t.Helper()
				if got := p.eval(`document.documentElement.scrollWidth + ' ' + window.innerWidth`); got != fmt.Sprintf("%d %d", size.width, size.width) {
					t.Fatalf("%s: document width and viewport = %s, want %d", when, got, size.width)
				}
			}
			notWider("three pending requests")

			// Keyboard only: Tab from the top of the page to the button
			// whose accessible name is "Approve Kitchen iPad (kitchen-ipad)", then Enter.
			p.do("focus the page", chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`))
			for i := 0; ; i++ {
				if i == 40 {
					t.Fatalf("40 tabs never reached 'Approve Kitchen iPad (kitchen-ipad)'; last focus: %s", p.eval(`document.activeElement.outerHTML`))
				}
				p.do("tab", chromedp.KeyEvent("\t"))
				if p.eval(`document.activeElement.getAttribute('aria-label') || ''`) == "Approve Kitchen iPad (kitchen-ipad)" {
					break
				}
			}
			p.do("approve with Enter", chromedp.KeyEvent("\r"),
				chromedp.WaitVisible(css(`#nodes tr[data-node-id="kitchen-ipad"]`)))
			p.until("the token notice", `document.querySelectorAll('.notice.token').length === 1`)
			token := p.eval(`document.querySelector('.notice.token code.token-value').textContent`)
			if v, err := store.Verify(context.Background(), "kitchen-ipad", token); err != nil || !v.OK {
				t.Fatalf("the token approved by keyboard does not verify: %+v %v", v, err)
			}
			if n := p.eval(`String(document.querySelectorAll('button[aria-label="Remove Kitchen iPad"]').length)`); n != "1" {
				t.Fatalf("buttons named 'Remove Kitchen iPad': %s", n)
			}

			// Two more actions and a live event: the token stays.
			p.do("reject the hall display",
				chromedp.Click(css(`#pending tr[data-request-id=%q] button.reject`, hall)),
				chromedp.WaitNotPresent(css(`#pending tr[data-request-id=%q]`, hall)))
			p.do("approve the porch camera",
				chromedp.Click(css(`#pending tr[data-request-id=%q] button.approve`, porch)),
				chromedp.WaitVisible(css(`#nodes tr[data-node-id="porch-cam"]`)))
			p.until("the event stream", `document.querySelector('#live').textContent === 'live'`)
			garage := request("garage-pi", "Garage Pi", "linux", "192.168.178.42")
			p.do("a live event", chromedp.WaitVisible(css(`#pending tr[data-request-id=%q]`, garage)))
			if got := p.eval(`[...document.querySelectorAll('.notice.token code.token-value')].map(c => c.textContent).join(' ')`); !strings.Contains(got, token) {
				t.Fatalf("Kitchen iPad's token is gone after two actions and a live event; token notices: %q", got)
			}
			notWider("after the actions")
			if dir := os.Getenv("PAIRGATE_SCREENSHOTS"); dir != "" {
				shot, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "ui-"+size.name+".png"), shot, 0o644); err != nil {
					t.Fatal(err)
				}
			}

			// Dismissing is the operator's choice.
			p.do("dismiss Kitchen iPad's token",
				chromedp.Click(chromedp.CSS(`.notice.token button.dismiss[aria-label*="kitchen-ipad"]`)))
			p.until("one token notice left", `document.querySelectorAll('.notice.token').length === 1`)
		})
	}
}

// A decision that waits on a stalled database disables its row's buttons
// and says so until the server answers (an impatient operator's Reject,
// clicked meanwhile, was queued behind the Approve and won); a request
// whose name copies another node's shows its own node id, and says whose
// name it copies; one rename
// form at a time, and Cancel always closes it.
func TestOperatorPageWhileAWriteWaits(t *testing.T) {
	b := browser(t)
	ts := startServer(t)
	store := ts.byName["default"].Store
	request := ts.requester(t)
	kitchen := request(`{"nodeId":"kitchen-ipad","displayName":"Kitchen iPad"}`)
	impostor := request(`{"nodeId":"imp","displayName":"Kitchen\u200biPad"}`)
	p := signedIn(t, b, ts, impostor)
	if got := p.eval(fmt.Sprintf(`document.querySelector('tr[data-request-id=%q] td.name').innerText`, impostor)); got != "Kitchen\\u200biPad\nimp\n⚠ named like Kitchen iPad (node kitchen-ipad), which asks too" {
		t.Fatalf("the impostor's row shows %q", got)
	}

	release := locktest.HoldWriteLock(t, ts.byName["default"].Config.DatabasePath())
	p.do("approve while the database is locked", chromedp.Click(css(`#pending tr[data-request-id=%q] button.approve`, kitchen)))
	row := fmt.Sprintf(`document.querySelector('#pending tr[data-request-id=%q]')`, kitchen)
	p.until("the row waits", row+`.querySelector('.doing') !== null && [...`+row+`.querySelectorAll('button')].every(b => b.disabled)`)
	if got := p.eval(row + `.querySelector('.doing').textContent`); got != "approving… (waiting for the server)" {
		t.Fatalf("the waiting row says %q", got)
	}
	release()
	p.do("the approval lands", chromedp.WaitNotPresent(css(`#pending tr[data-request-id=%q]`, kitchen)))
	if st, err := store.RequestStatus(context.Background(), kitchen); err != nil || st.Status != db.StatusApproved {
		t.Fatalf("kitchen after the stall: %+v %v", st, err)
	}

	ts.mustAPI(t, 200, "POST", base+"/requests/"+impostor+"/approve", "", nil)
	p.do("both paired", chromedp.WaitVisible(css(`#nodes tr[data-node-id="imp"]`)))
	p.do("rename one, then the other",
		chromedp.Click(css(`#nodes tr[data-node-id="kitchen-ipad"] button.rename`)),
		chromedp.WaitVisible(css(`#nodes tr[data-node-id="kitchen-ipad"] form.rename`)),
		chromedp.Click(css(`#nodes tr[data-node-id="imp"] button.rename`)),
		chromedp.WaitVisible(css(`#nodes tr[data-node-id="imp"] form.rename`)))
	if n := p.eval(`String(document.querySelectorAll('form.rename').length)`); n != "1" {
		t.Fatalf("%s rename forms open", n)
	}
	// A change made elsewhere shows while a form is open.
	ts.mustAPI(t, 204, "DELETE", base+"/nodes/kitchen-ipad", "", nil)
	p.until("the removed node leaves the list", `document.querySelector('#nodes tr[data-node-id="kitchen-ipad"]') === null && document.querySelector('#paired-count').textContent === '1'`)
	p.do("cancel", chromedp.Click(css(`#nodes tr[data-node-id="imp"] button.cancel`)))
	p.until("no form", `document.querySelectorAll('form.rename').length === 0`)
	// Escape closes it wherever the focus is.
	p.do("rename again", chromedp.Click(css(`#nodes tr[data-node-id="imp"] button.rename`)), chromedp.WaitVisible(chromedp.CSS(`form.rename`)))
	p.eval(`document.activeElement.blur(); document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape'})); ''`)
	p.until("Escape closed the form", `document.querySelectorAll('form.rename').length === 0 && document.querySelector('#nodes tr[data-node-id="imp"] td.name').textContent === 'Kitchen\\u200biPad'`)

	// The server gone: the page says which action failed and why, not the
	// browser's "Failed to fetch".
	ts.stop()
	p.do("remove with the server stopped",
		chromedp.Click(css(`#nodes tr[data-node-id="imp"] button.remove`)),
		chromedp.WaitVisible(css(`#nodes tr[data-node-id="imp"] button.remove.confirm`)),
		chromedp.Click(css(`#nodes tr[data-node-id="imp"] button.remove.confirm`)))
	removeFailed := `[...document.querySelectorAll('.notice.error')].some(n => n.textContent.includes('Remove Kitchen\\u200biPad (imp) failed: the server did not answer'))`
	p.until("the notice", removeFailed)
	// The lists then fail to load too: said beside it, not over it.
	p.until("both notices", removeFailed+` && [...document.querySelectorAll('.notice.error.background')].some(n => n.textContent.includes('Loading the lists failed: the server did not answer'))`)
}

// signedIn opens the page in the browser b and signs in with the operator
// token, once the pending request waitFor shows.
func signedIn(t *testing.T, b context.Context, ts *testServer, waitFor string) page {
	p := page{t: t, ctx: b}
	p.do("sign in",
		chromedp.Navigate(ts.url+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), testToken),
		chromedp.Click(chromedp.CSS("#signin-button")),
		chromedp.WaitVisible(css(`#pending tr[data-request-id=%q]`, waitFor)))
	return p
}

// requester makes pairing requests over REST and returns their ids.
func (ts *testServer) requester(t *testing.T) func(body string) string {
	return func(body string) string {
		t.Helper()
		var res db.RequestResult
		ts.mustAPI(t, 201, "POST", base+"/requests", body, &res)
		return res.Request.RequestID
	}
}

// An outside trial at 100,000 nodes: every event started another refresh
// of the lists (seconds and some 80 MB each), and four ran at once. The
// page runs one at a time; events meanwhile ask for one more, after it.
func TestOperatorPageRefreshesOneAtATime(t *testing.T) {
	b := browser(t)
	ts := startServer(t)
	request := ts.requester(t)
	first := request(`{"nodeId":"first"}`)
	p := signedIn(t, b, ts, first)
	// Each list the page asks for now takes a second, as a large one does.
	p.eval(`window.inFlight = 0; window.mostInFlight = 0; window.lists = 0;
		const fetched = window.fetch;
		window.fetch = async (...args) => {
			if (!String(args[0]).includes('/rpc')) return fetched(...args);
			window.lists++;
			window.mostInFlight = Math.max(window.mostInFlight, ++window.inFlight);
			try {
				await new Promise((r) => setTimeout(r, 1000));
				return await fetched(...args);
			} finally {
				window.inFlight--;
			}
		};
		''`)
	var last string
	for i := range 8 { // an event every 300 ms, for over two seconds
		last = request(fmt.Sprintf(`{"nodeId":"n%d"}`, i))
		time.Sleep(300 * time.Millisecond)
	}
	p.do("the last request shows", chromedp.WaitVisible(css(`#pending tr[data-request-id=%q]`, last)))
	if most := p.eval(`String(window.mostInFlight)`); most != "1" {
		t.Fatalf("%s refreshes of the lists in flight at once (%s in all), want 1", most, p.eval(`String(window.lists)`))
	}
}
