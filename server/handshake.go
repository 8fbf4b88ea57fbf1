package server

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/pairgate/pairgate/db"
)

// deviceSignatureWindow is how far signedAt may be from now.
const deviceSignatureWindow = 10 * time.Minute

var connectSchema = schema{
	{name: "minProtocol", kind: kInt, required: true},
	{name: "maxProtocol", kind: kInt, required: true},
	{name: "client", kind: kObject, required: true, sub: schema{
		{name: "id", kind: kString, required: true},
		{name: "displayName", kind: kString},
		{name: "version", kind: kString, required: true},
		{name: "platform", kind: kString, required: true},
		{name: "deviceFamily", kind: kString},
		{name: "modelIdentifier", kind: kString},
		{name: "mode", kind: kString, required: true},
		{name: "instanceId", kind: kString},
	}},
	{name: "caps", kind: kStringList},
	{name: "commands", kind: kStringList},
	{name: "permissions", kind: kPermissions},
	{name: "pathEnv", kind: kAnyString},
	{name: "role", kind: kString},
	{name: "scopes", kind: kStringList},
	{name: "device", kind: kObject, sub: schema{
		{name: "id", kind: kString, required: true},
		{name: "publicKey", kind: kString, required: true},
		{name: "signature", kind: kString, required: true},
		{name: "signedAt", kind: kInt, required: true},
		{name: "nonce", kind: kString},
	}},
	{name: "auth", kind: kObject, sub: schema{
		{name: "token", kind: kAnyString},
		{name: "password", kind: kAnyString},
	}},
	{name: "locale", kind: kAnyString},
	{name: "userAgent", kind: kAnyString},
}

type connectParams struct {
	MinProtocol int `json:"minProtocol"`
	MaxProtocol int `json:"maxProtocol"`
	Client      struct {
		ID              string `json:"id"`
		DisplayName     string `json:"displayName"`
		Version         string `json:"version"`
		Platform        string `json:"platform"`
		DeviceFamily    string `json:"deviceFamily"`
		ModelIdentifier string `json:"modelIdentifier"`
		Mode            string `json:"mode"`
		InstanceID      string `json:"instanceId"`
	} `json:"client"`
	Caps        []string       `json:"caps"`
	Commands    []string       `json:"commands"`
	Permissions db.Permissions `json:"permissions"`
	Role        string         `json:"role"`
	Scopes      []string       `json:"scopes"`
	Device      *deviceParams  `json:"device"`
	Auth        struct {
		Token string `json:"token"`
	} `json:"auth"`
}

type deviceParams struct {
	ID        string `json:"id"`
	PublicKey string `json:"publicKey"`
	Signature string `json:"signature"`
	SignedAt  int64  `json:"signedAt"`
	Nonce     string `json:"nonce"`
}

// handshakeError is a refused connect: the error to answer with and the
// close code that follows it.
type handshakeError struct {
	err       *rpcError
	closeCode int
}

func refuse(code int, format string, args ...any) *handshakeError {
	return &handshakeError{err: invalidRequest(format, args...), closeCode: code}
}

// parseConnect validates connect params and the protocol range.
func parseConnect(raw json.RawMessage) (connectParams, *handshakeError) {
	var p connectParams
	if err := connectSchema.check(raw); err != nil {
		return p, refuse(closePolicy, "invalid connect params: %s", err)
	}
	json.Unmarshal(raw, &p)
	if p.Role == "" {
		p.Role = roleOperator
	}
	if p.Role != roleOperator && p.Role != roleNode {
		return p, refuse(closePolicy, "invalid connect params: at /role: must be equal to one of the allowed values")
	}
	if p.MinProtocol > protocolVersion || p.MaxProtocol < protocolVersion {
		e := refuse(closeProtocol, "protocol mismatch")
		e.err.Details = map[string]int{"expectedProtocol": protocolVersion}
		return p, e
	}
	return p, nil
}

// signaturePayload is the string a device signs: v2 binds the challenge
// nonce; a client that got no challenge signs v1, without it (as the
// recorded OpenClaw CLI does), and is then bound only by signedAt.
func signaturePayload(p connectParams) string {
	fields := []string{
		"v2", p.Device.ID, p.Client.ID, p.Client.Mode, p.Role, strings.Join(p.Scopes, ","),
		strconv.FormatInt(p.Device.SignedAt, 10), p.Auth.Token, p.Device.Nonce,
	}
	if p.Device.Nonce == "" {
		fields[0], fields = "v1", fields[:len(fields)-1]
	}
	return strings.Join(fields, "|")
}

// verifyDevice checks a device identity: the id is the SHA-256 of the
// public key, the signature is fresh, bound to this connection's challenge,
// and valid for the v2 payload.
func verifyDevice(p connectParams, challenge string, now time.Time, window time.Duration) *handshakeError {
	d := p.Device
	pub, err := decodeB64URL(d.PublicKey)
	sum := sha256.Sum256(pub)
	if err != nil || len(pub) != ed25519.PublicKeySize || hex.EncodeToString(sum[:]) != d.ID {
		return refuse(closePolicy, "device identity mismatch")
	}
	if age := now.Sub(time.UnixMilli(d.SignedAt)); age > window || age < -window {
		return refuse(closePolicy, "device signature expired")
	}
	if d.Nonce != "" && d.Nonce != challenge {
		return refuse(closePolicy, "device nonce mismatch")
	}
	sig, err := decodeB64URL(d.Signature)
	if err != nil || !ed25519.Verify(pub, []byte(signaturePayload(p)), sig) {
		return refuse(closePolicy, "device signature invalid")
	}
	return nil
}

// decodeB64URL accepts base64url with or without padding.
func decodeB64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// authenticate turns valid connect params into a session, or refuses.
func (s *Server) authenticate(ctx context.Context, p *Profile, cp connectParams, remoteIP string) (session, *handshakeError) {
	sess := session{profile: p, role: cp.Role, remoteIP: remoteIP, actor: "ws", now: s.now}
	// The class the presented credential is limited in: a node's token, or
	// the operator token (which a legacy node may present too).
	class := classOperator
	if cp.Role == roleNode && cp.Auth.Token != "" && !p.Authorized(cp.Auth.Token) {
		class = classNode
	}
	if cp.Role == roleOperator || cp.Auth.Token != "" {
		if retry, locked := s.limiter.blocked(limitKey{p.Config.Name, class, remoteIP}); locked {
			return sess, refuse(closePolicy, "unauthorized: too many failed attempts; retry in %ds", int(retry.Seconds()+0.999))
		}
	}
	if cp.Role == roleOperator {
		if !p.Authorized(cp.Auth.Token) {
			s.authFailed(p.Config.Name, classOperator, remoteIP)
			return sess, refuse(closePolicy, "unauthorized: gateway token mismatch")
		}
		sess.scopes = cp.Scopes
		if len(sess.scopes) == 0 {
			sess.scopes = []string{scopeAdmin}
		}
		return sess, nil
	}

	// A node: its identity is its verified device.
	if cp.Device == nil {
		return sess, refuse(closePolicy, "unauthorized: a node must present its device identity")
	}
	sess.nodeID = cp.Device.ID
	sess.actor = "node"
	sess.node = db.NodeMeta{
		DisplayName: cp.Client.DisplayName, Platform: cp.Client.Platform, Version: cp.Client.Version,
		DeviceFamily: cp.Client.DeviceFamily, ModelIdentifier: cp.Client.ModelIdentifier,
		Caps: cp.Caps, Commands: cp.Commands, Permissions: cp.Permissions,
	}
	switch token := cp.Auth.Token; {
	case token == "":
		// A pairing session: it may ask to pair and wait for the answer.
	case p.Authorized(token):
		// (legacy) OpenClaw nodes connect with the gateway token; a holder
		// of the operator token is trusted as the node it says it is.
		sess.paired = s.isPaired(ctx, p, sess.nodeID)
	default:
		v, err := p.Store.Verify(ctx, sess.nodeID, token)
		if err != nil {
			return sess, &handshakeError{err: toRPCError(err), closeCode: closeTryAgain}
		}
		if !v.OK {
			s.authFailed(p.Config.Name, classNode, remoteIP)
			return sess, &handshakeError{err: &rpcError{Code: codeNotPaired, Message: "unauthorized: node token mismatch"}, closeCode: closePolicy}
		}
		sess.paired = true
		digest := sha256.Sum256([]byte(token))
		sess.tokenDigest = digest[:]
	}
	if sess.paired {
		if err := p.Store.MarkConnected(ctx, sess.nodeID, remoteIP, sess.origin()); err != nil {
			return sess, &handshakeError{err: toRPCError(err), closeCode: closeTryAgain}
		}
	}
	return sess, nil
}

func (s *Server) isPaired(ctx context.Context, p *Profile, nodeID string) bool {
	_, err := p.Store.Node(ctx, nodeID)
	return err == nil
}
