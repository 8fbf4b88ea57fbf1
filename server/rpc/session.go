package rpc

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/pairgate/pairgate/db"
)

// Scopes.
const (
	ScopeAdmin   = "operator.admin"
	ScopePairing = "operator.pairing"
	ScopeRead    = "operator.read"
)

// Roles.
const (
	RoleOperator = "operator"
	RoleNode     = "node"
	// RoleVerifier is a caller that presented no credential, only a
	// node's token to check (REST verify): it may call node.pair.verify
	// and nothing else.
	RoleVerifier = "verifier"
)

// Profile is a served profile as the faces see it.
type Profile struct {
	Name  string
	Store *db.Store
	// Authorized compares a presented operator token in constant time.
	Authorized func(token string) bool
	// SilentCIDRs are the networks whose silent requests are approved at
	// once (autoApprove.silentCidrs).
	SilentCIDRs []netip.Prefix
	// RequestsPerAddress and RequestsPerProfile bound new pending
	// requests a minute.
	RequestsPerAddress, RequestsPerProfile int
	// Live is what the transport knows of the profile's connected nodes.
	Live Live
}

// Live is the transport's view of a profile's connected sessions.
type Live interface {
	// Entry shapes a paired node, overlaying its newest live session.
	Entry(n db.Node) db.NodeEntry
	// DropNode closes the live sessions of a node whose pairing was removed.
	DropNode(nodeID string)
}

// Conn is a session's own connection (nil for REST callers).
type Conn interface {
	// ReleaseHold says the node asks with node.pair.request itself: it
	// learns the outcome from the private resolution, and is no longer
	// held open (and closed 1012) for the request its connect opened.
	ReleaseHold()
	// AwaitResolution makes the connection the recipient of the private
	// resolution of its node's request.
	AwaitResolution(requestID string)
}

// Session is who is calling: an authenticated WS connection or a REST
// caller. The dispatcher decides by it alone.
type Session struct {
	Profile *Profile
	Role    string
	Scopes  []string
	// NodeID is the verified device id of a node session; Paired says it
	// presented its pairing token (else it is a pairing session).
	NodeID string
	Paired bool
	// TokenDigest is the SHA-256 of the node token a paired session
	// presented (nil when it came in with the operator token): an import
	// that re-keys the node ends the session.
	TokenDigest []byte
	// PendingRequest is the request a node's connect opened or found, for
	// a session held until it is decided; OpenedRequest is set when this
	// connect opened it.
	PendingRequest, OpenedRequest string
	// Node is what a node said about itself in connect.
	Node     db.NodeMeta
	RemoteIP string
	Actor    string
	Conn     Conn
}

// Origin is who the store records as the author of a change.
func (s *Session) Origin() db.Origin { return db.Origin{Actor: s.Actor, Source: s.RemoteIP} }

// HasScope applies the implications: admin implies every scope, pairing
// implies read.
func (s *Session) HasScope(scope string) bool {
	if slices.Contains(s.Scopes, ScopeAdmin) || slices.Contains(s.Scopes, scope) {
		return true
	}
	return scope == ScopeRead && slices.Contains(s.Scopes, ScopePairing)
}

// ownNode refuses a node session acting for another node.
func (s *Session) ownNode(nodeID string) error {
	if s.Role == RoleNode && strings.TrimSpace(nodeID) != s.NodeID {
		return forbidden("unauthorized: a node may only act for its own nodeId")
	}
	return nil
}

// autoApproves says whether the profile's policy approves a silent
// request from a trusted network at once. The address is the request's
// remoteIp when set (for node sessions, the connection's own), else the
// caller's.
func (s *Session) autoApproves(in db.RequestInput) bool {
	if in.Silent == nil || !*in.Silent || len(s.Profile.SilentCIDRs) == 0 {
		return false
	}
	ip := in.RemoteIP
	if ip == "" {
		ip = s.RemoteIP
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	return slices.ContainsFunc(s.Profile.SilentCIDRs, func(p netip.Prefix) bool { return p.Contains(addr) })
}
