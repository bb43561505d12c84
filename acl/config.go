package acl

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/strata-mq/strata/remoting"
)

// Perm is what an account may do with a topic or a group: publish,
// subscribe, both, or nothing (deny).
type Perm uint8

// Permissions. A rule of Deny (zero) refuses both.
const (
	Deny Perm = 0
	Pub  Perm = 1 << 0
	Sub  Perm = 1 << 1
)

func (p Perm) String() string {
	switch p {
	case Deny:
		return "DENY"
	case Pub:
		return "PUB"
	case Sub:
		return "SUB"
	}
	return "PUB|SUB"
}

// parsePerm reads DENY, PUB, SUB, PUB|SUB (either order) or ANY.
func parsePerm(s string) (Perm, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "DENY":
		return Deny, nil
	case "PUB":
		return Pub, nil
	case "SUB":
		return Sub, nil
	case "PUB|SUB", "SUB|PUB", "ANY":
		return Pub | Sub, nil
	}
	return 0, fmt.Errorf("permission %q: want DENY, PUB, SUB or PUB|SUB", s)
}

// Limits of an ACL file, checked before anything is built from it.
const (
	maxFileBytes  = 4 << 20
	maxAccounts   = 10000
	maxRules      = 10000 // per account and kind
	maxNameLen    = 255   // RocketMQ's topic name limit
	minSecretLen  = 6     // RocketMQ's plain ACL minimum
	maxSecretLen  = 1024
	maxAddrRanges = 1000
)

// fileAccount is one account as written in the file (RocketMQ's
// plain_acl.yml names, so an existing file reads the same).
type fileAccount struct {
	AccessKey          string   `yaml:"accessKey"`
	SecretKey          string   `yaml:"secretKey"`
	WhiteRemoteAddress string   `yaml:"whiteRemoteAddress"`
	Admin              bool     `yaml:"admin"`
	DefaultTopicPerm   string   `yaml:"defaultTopicPerm"`
	DefaultGroupPerm   string   `yaml:"defaultGroupPerm"`
	TopicPerms         []string `yaml:"topicPerms"`
	GroupPerms         []string `yaml:"groupPerms"`
}

type file struct {
	Accounts []fileAccount `yaml:"accounts"`
}

// rule grants perm on a name, or on every name starting with prefix.
type rule struct {
	name   string
	prefix bool
	perm   Perm
}

// rules are one kind's rules of an account: exact names first, then
// prefixes longest first, so the first match is the most specific.
type rules struct {
	list []rule
	def  Perm
}

func (rs *rules) perm(name string) Perm {
	for _, r := range rs.list {
		if r.prefix && strings.HasPrefix(name, r.name) || !r.prefix && name == r.name {
			return r.perm
		}
	}
	return rs.def
}

// Account is an authenticated identity and what it may do.
type Account struct {
	accessKey string
	secretKey string
	admin     bool
	sources   []netip.Prefix // nil: any source address
	topics    rules
	groups    rules
}

// AccessKey names the account.
func (a *Account) AccessKey() string { return a.accessKey }

// Admin reports whether the account may administer (create and delete
// topics, change configuration, register brokers).
func (a *Account) Admin() bool { return a.admin }

// Topic returns what the account may do with topic.
func (a *Account) Topic(topic string) Perm { return a.topics.perm(topic) }

// Group returns what the account may do with consumer group.
func (a *Account) Group(group string) Perm { return a.groups.perm(group) }

// allowsSource reports whether requests may come from addr.
func (a *Account) allowsSource(addr netip.Addr) bool {
	if a.sources == nil {
		return true
	}
	addr = addr.Unmap()
	for _, p := range a.sources {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Table is a parsed ACL file: accounts by access key.
type Table struct {
	accounts map[string]*Account
}

// Len returns the number of accounts.
func (t *Table) Len() int { return len(t.accounts) }

// Parse reads an ACL file (YAML, RocketMQ plain_acl.yml's account fields):
//
//	accounts:
//	  - accessKey: orders-app
//	    secretKey: "…"              # 6 characters or more
//	    whiteRemoteAddress: 10.0.0.0/8, 192.168.1.7   # optional
//	    admin: false
//	    defaultTopicPerm: DENY       # DENY (default), PUB, SUB, PUB|SUB
//	    defaultGroupPerm: DENY
//	    topicPerms: [orders=PUB|SUB, "audit-*=SUB"]   # name or prefix*
//	    groupPerms: [billing=SUB]
//
// Unknown fields, duplicate access keys, bad permissions or names and
// empty or short secrets are errors: a file that does not say exactly what
// it means is refused whole.
func Parse(data []byte) (*Table, error) {
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("acl: file of %d bytes, limit %d", len(data), maxFileBytes)
	}
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) { // io.EOF: an empty file
		return nil, fmt.Errorf("acl: %w", err)
	}
	if len(f.Accounts) > maxAccounts {
		return nil, fmt.Errorf("acl: %d accounts, limit %d", len(f.Accounts), maxAccounts)
	}
	t := &Table{accounts: make(map[string]*Account, len(f.Accounts))}
	for i, fa := range f.Accounts {
		a, err := fa.build()
		if err != nil {
			return nil, fmt.Errorf("acl: account %d (%q): %w", i+1, fa.AccessKey, err)
		}
		if _, dup := t.accounts[a.accessKey]; dup {
			return nil, fmt.Errorf("acl: access key %q appears twice", a.accessKey)
		}
		t.accounts[a.accessKey] = a
	}
	return t, nil
}

func (fa fileAccount) build() (*Account, error) {
	a := &Account{accessKey: fa.AccessKey, secretKey: fa.SecretKey, admin: fa.Admin}
	switch {
	case fa.AccessKey == "":
		return nil, errors.New("accessKey is empty")
	case len(fa.AccessKey) > maxNameLen || strings.ContainsAny(fa.AccessKey, " \t\r\n"):
		return nil, errors.New("accessKey is too long or holds white space")
	case len(fa.SecretKey) < minSecretLen:
		return nil, fmt.Errorf("secretKey must have %d characters or more", minSecretLen)
	case len(fa.SecretKey) > maxSecretLen:
		return nil, fmt.Errorf("secretKey longer than %d characters", maxSecretLen)
	}
	var err error
	if a.sources, err = parseSources(fa.WhiteRemoteAddress); err != nil {
		return nil, err
	}
	if a.topics, err = parseRules("topicPerms", fa.TopicPerms, fa.DefaultTopicPerm); err != nil {
		return nil, err
	}
	if a.groups, err = parseRules("groupPerms", fa.GroupPerms, fa.DefaultGroupPerm); err != nil {
		return nil, err
	}
	return a, nil
}

// parseSources reads comma-separated addresses and CIDR prefixes; "" and
// "*" allow any source.
func parseSources(s string) ([]netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "*" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) > maxAddrRanges {
		return nil, fmt.Errorf("whiteRemoteAddress: %d entries, limit %d", len(parts), maxAddrRanges)
	}
	out := make([]netip.Prefix, 0, len(parts))
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if strings.Contains(p, "/") {
			pf, err := netip.ParsePrefix(p)
			if err != nil {
				return nil, fmt.Errorf("whiteRemoteAddress %q: %w", p, err)
			}
			out = append(out, pf.Masked())
			continue
		}
		addr, err := netip.ParseAddr(p)
		if err != nil {
			return nil, fmt.Errorf("whiteRemoteAddress %q: an address or a CIDR prefix (10.0.0.0/8): %w", p, err)
		}
		addr = addr.Unmap()
		out = append(out, netip.PrefixFrom(addr, addr.BitLen()))
	}
	return out, nil
}

// parseRules reads NAME=PERM entries (NAME may end with * for a prefix).
func parseRules(field string, entries []string, def string) (rules, error) {
	var rs rules
	if len(entries) > maxRules {
		return rs, fmt.Errorf("%s: %d entries, limit %d", field, len(entries), maxRules)
	}
	if def != "" {
		p, err := parsePerm(def)
		if err != nil {
			return rs, fmt.Errorf("default of %s: %w", field, err)
		}
		rs.def = p
	}
	seen := map[rule]bool{}
	for _, e := range entries {
		name, perm, ok := strings.Cut(e, "=")
		if !ok {
			return rs, fmt.Errorf("%s entry %q: want NAME=PERM", field, e)
		}
		name = strings.TrimSpace(name)
		r := rule{name: name}
		if strings.HasSuffix(name, "*") {
			r.name, r.prefix = strings.TrimSuffix(name, "*"), true
		}
		if err := checkName(r.name, r.prefix); err != nil {
			return rs, fmt.Errorf("%s entry %q: %w", field, e, err)
		}
		p, err := parsePerm(perm)
		if err != nil {
			return rs, fmt.Errorf("%s entry %q: %w", field, e, err)
		}
		key := rule{name: r.name, prefix: r.prefix}
		if seen[key] {
			return rs, fmt.Errorf("%s: %q appears twice", field, name)
		}
		seen[key] = true
		r.perm = p
		rs.list = append(rs.list, r)
	}
	// Exact names first, then the longest prefixes: the first match is the
	// most specific rule.
	slices.SortStableFunc(rs.list, func(x, y rule) int {
		switch {
		case x.prefix != y.prefix:
			if !x.prefix {
				return -1
			}
			return 1
		case x.prefix:
			return len(y.name) - len(x.name)
		}
		return 0
	})
	return rs, nil
}

// checkName accepts topic and group names as RocketMQ does (letters,
// digits, %, |, - and _), and an empty prefix ("*": every name).
func checkName(name string, prefix bool) error {
	if name == "" && !prefix {
		return errors.New("empty name")
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("name longer than %d characters", maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		if !remoting.ValidNameByte(name[i]) {
			return fmt.Errorf("character %q is not allowed in a name", name[i])
		}
	}
	return nil
}
