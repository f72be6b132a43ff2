package queueshttp

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// ErrNotLoopback is what LoopbackOnly's Authorize returns (wrapped) for a
// request it refuses. The API logs it at debug level and answers 403.
var ErrNotLoopback = errors.New("queueshttp: request is not addressed to this loopback server")

// IsLoopbackAddr reports whether addr ("host:port", or a bare host) names
// only loopback interfaces: a loopback IP or "localhost". An empty host
// (":8000"), 0.0.0.0 and :: listen on every interface and are not loopback.
func IsLoopbackAddr(addr string) bool {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// LoopbackOnly returns an Options.Authorize for a server that listens on
// loopback addresses only, such as a local tool without user accounts. It
// admits a request when
//
//   - its peer is a loopback address,
//   - its Host header names one of addrs, and
//   - its Origin header, when present, is http:// or https:// one of addrs.
//
// The Host and Origin checks defeat DNS rebinding: a page on an attacker's
// domain that resolves to 127.0.0.1 reaches the server, but with the
// attacker's name in Host and Origin. addrs are the addresses the server
// actually serves, port included (pass the listener's Addr().String(),
// which holds the real port when the server asked for port 0). A loopback
// IP also admits "localhost" with the same port, and "localhost" admits
// 127.0.0.1 and [::1]; for port 80 the Host may omit the port.
//
// LoopbackOnly panics when an address has no port or is not loopback
// (check with IsLoopbackAddr first): a server reachable from the network
// needs a real Authorize.
func LoopbackOnly(addrs ...string) func(*http.Request) error {
	if len(addrs) == 0 {
		panic("queueshttp: LoopbackOnly needs the addresses the server listens on")
	}
	allowed := map[string]bool{}
	add := func(host, port string) {
		allowed[strings.ToLower(net.JoinHostPort(host, port))] = true
		if port == "80" { // browsers leave the default port out of Host
			allowed[canonicalHost(host)] = true
		}
	}
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil || port == "" {
			panic(fmt.Sprintf("queueshttp: LoopbackOnly: %q is not a host:port address", a))
		}
		if !IsLoopbackAddr(host) {
			panic(fmt.Sprintf("queueshttp: LoopbackOnly: %q is not a loopback address", a))
		}
		if strings.EqualFold(host, "localhost") {
			add("127.0.0.1", port)
			add("::1", port)
		} else {
			host = net.ParseIP(host).String() // one spelling of the IP
		}
		add(host, port)
		add("localhost", port)
	}
	return func(r *http.Request) error {
		peer, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			peer = r.RemoteAddr
		}
		if ip := net.ParseIP(peer); ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("%w: peer %q is not a loopback address", ErrNotLoopback, r.RemoteAddr)
		}
		if !allowed[canonicalHost(r.Host)] {
			return fmt.Errorf("%w: Host %q is not an address this server listens on", ErrNotLoopback, r.Host)
		}
		if origin := r.Header.Get("Origin"); origin != "" {
			u, err := url.Parse(origin)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !allowed[canonicalHost(u.Host)] {
				return fmt.Errorf("%w: Origin %q is not this server", ErrNotLoopback, origin)
			}
		}
		return nil
	}
}

// canonicalHost lowercases a Host value and spells an IP address the way
// net.IP.String does, so [::1]:8000 and [0:0::1]:8000 compare equal.
func canonicalHost(hostport string) string {
	hostport = strings.ToLower(hostport)
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		if ip := net.ParseIP(strings.Trim(hostport, "[]")); ip != nil {
			s := ip.String()
			if strings.Contains(s, ":") {
				return "[" + s + "]"
			}
			return s
		}
		return hostport
	}
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	return net.JoinHostPort(host, port)
}
