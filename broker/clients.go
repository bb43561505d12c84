package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// DefaultClientExpiry is how long a client stays registered without a
// heartbeat (Java channelExpiredTimeout, 120 s); pass it to Expire.
const DefaultClientExpiry = 120 * time.Second

// Errors of subscriptions and tag filters.
var (
	// ErrBadExpression: a subscription expression cannot be parsed, or its
	// type is not TAG (answer RespSubscriptionParseFailed).
	ErrBadExpression = errors.New("bad subscription expression")
	// ErrNoSubscription: no live client of the group subscribes to the
	// topic (answer RespSubscriptionNotExist).
	ErrNoSubscription = errors.New("no subscription")
	// ErrBadHeartbeat: a HEART_BEAT body is not valid JSON or lacks a
	// required field.
	ErrBadHeartbeat = errors.New("bad heartbeat body")
)

// HeartbeatData is the JSON body of HEART_BEAT (PROTOCOL.md §6). Unknown
// fields are ignored.
type HeartbeatData struct {
	// ClientID identifies the client process, "ip@pid" or "ip@instance".
	ClientID string `json:"clientID"`
	// ProducerDataSet lists the client's producer groups.
	ProducerDataSet []ProducerData `json:"producerDataSet"`
	// ConsumerDataSet lists the client's consumer groups.
	ConsumerDataSet []ConsumerData `json:"consumerDataSet"`
}

// ProducerData is one producer group of a heartbeat.
type ProducerData struct {
	GroupName string `json:"groupName"`
}

// ConsumerData is one consumer group of a heartbeat.
type ConsumerData struct {
	GroupName string `json:"groupName"`
	// ConsumeType is CONSUME_PASSIVELY (push) or CONSUME_ACTIVELY (pull).
	ConsumeType string `json:"consumeType"`
	// MessageModel is CLUSTERING or BROADCASTING.
	MessageModel string `json:"messageModel"`
	// ConsumeFromWhere is CONSUME_FROM_LAST_OFFSET, _FIRST_OFFSET or _TIMESTAMP.
	ConsumeFromWhere    string             `json:"consumeFromWhere"`
	SubscriptionDataSet []SubscriptionData `json:"subscriptionDataSet"`
	UnitMode            bool               `json:"unitMode"`
}

// SubscriptionData is one topic subscription of a consumer group.
type SubscriptionData struct {
	Topic string `json:"topic"`
	// SubString is the expression: "*" or "tagA||tagB" for type TAG.
	SubString string `json:"subString"`
	// TagsSet holds the tags of SubString (empty for "*").
	TagsSet []string `json:"tagsSet"`
	// CodeSet holds the tag hashes (remoting.TagHash). The Go client sends
	// them as JSON strings, Java clients as numbers; both are accepted, and
	// they are encoded as numbers.
	CodeSet []int32 `json:"codeSet"`
	// SubVersion orders versions of a subscription: ns since the epoch from
	// the Go client, ms from Java clients.
	SubVersion int64 `json:"subVersion"`
	// ExpressionType is TAG (or empty); SQL92 is not supported.
	ExpressionType  string `json:"expressionType"`
	ClassFilterMode bool   `json:"classFilterMode"`
}

// UnmarshalJSON decodes a subscription, accepting codeSet elements as
// strings or numbers.
func (s *SubscriptionData) UnmarshalJSON(b []byte) error {
	type plain SubscriptionData // no methods: no recursion
	var w struct {
		plain
		CodeSet codeSet `json:"codeSet"` // shallower, so it wins over plain.CodeSet
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*s = SubscriptionData(w.plain)
	s.CodeSet = w.CodeSet
	return nil
}

// codeSet decodes a JSON array whose elements are int32 numbers or strings
// holding them.
type codeSet []int32

func (c *codeSet) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if raw == nil {
		*c = nil
		return nil
	}
	out := make([]int32, 0, len(raw))
	for _, r := range raw {
		text := string(r)
		if len(r) > 0 && r[0] == '"' {
			if err := json.Unmarshal(r, &text); err != nil {
				return err
			}
		}
		v, err := strconv.ParseInt(strings.TrimSpace(text), 10, 32)
		if err != nil {
			return fmt.Errorf("codeSet element %s: %w", r, err)
		}
		out = append(out, int32(v))
	}
	*c = out
	return nil
}

// Filter returns the tag filter of the subscription, parsed from
// SubString. It fails with ErrBadExpression for a type other than TAG.
func (s SubscriptionData) Filter() (TagFilter, error) {
	return ParseFilter(s.ExpressionType, s.SubString)
}

// ParseHeartbeat decodes a HEART_BEAT body. It fails with ErrBadHeartbeat
// (never panics) on malformed JSON, an empty client id, or an empty group
// name or topic.
func ParseHeartbeat(body []byte) (HeartbeatData, error) {
	var hb HeartbeatData
	if err := json.Unmarshal(body, &hb); err != nil {
		return HeartbeatData{}, fmt.Errorf("%w: %w", ErrBadHeartbeat, err)
	}
	if hb.ClientID == "" {
		return HeartbeatData{}, fmt.Errorf("%w: empty clientID", ErrBadHeartbeat)
	}
	for _, p := range hb.ProducerDataSet {
		if p.GroupName == "" {
			return HeartbeatData{}, fmt.Errorf("%w: client %s: producer with empty groupName", ErrBadHeartbeat, hb.ClientID)
		}
	}
	for _, c := range hb.ConsumerDataSet {
		if c.GroupName == "" {
			return HeartbeatData{}, fmt.Errorf("%w: client %s: consumer with empty groupName", ErrBadHeartbeat, hb.ClientID)
		}
		for _, s := range c.SubscriptionDataSet {
			if s.Topic == "" {
				return HeartbeatData{}, fmt.Errorf("%w: client %s: group %s: subscription with empty topic", ErrBadHeartbeat, hb.ClientID, c.GroupName)
			}
		}
	}
	return hb, nil
}

// TagFilter matches messages by tag: either every message ("*" or an empty
// expression) or messages whose tag is one of a set. The zero value matches
// every message. A TagFilter is immutable and safe to share.
type TagFilter struct {
	expr  string
	tags  []string // nil: match all
	codes []int32  // remoting.TagHash of each tag, truncated as Java does
}

// ParseTagExpression parses a TAG subscription expression: "*" or "" (all
// messages), or tags separated by "||" with optional whitespace around them
// ("a || b"). Empty tags are skipped, duplicates dropped; an expression
// with no tag at all ("||") fails with ErrBadExpression.
func ParseTagExpression(expr string) (TagFilter, error) {
	e := strings.TrimSpace(expr)
	if e == "" || e == "*" {
		return TagFilter{expr: "*"}, nil
	}
	f := TagFilter{expr: e}
	for t := range strings.SplitSeq(e, "||") {
		t = strings.TrimSpace(t)
		if t == "" || slices.Contains(f.tags, t) {
			continue
		}
		f.tags = append(f.tags, t)
		f.codes = append(f.codes, int32(remoting.TagHash([]byte(t))))
	}
	if len(f.tags) == 0 {
		return TagFilter{}, fmt.Errorf("%w: %q has no tag", ErrBadExpression, expr)
	}
	return f, nil
}

// ParseFilter parses a subscription expression of the given type, as the
// PULL_MESSAGE header (subscription, expressionType) or a heartbeat carry
// it. Type "" and "TAG" are tag expressions; any other type (SQL92) fails
// with ErrBadExpression.
func ParseFilter(expressionType, expr string) (TagFilter, error) {
	if expressionType != "" && !strings.EqualFold(expressionType, "TAG") {
		return TagFilter{}, fmt.Errorf("%w: expression type %q is not supported (only TAG)", ErrBadExpression, expressionType)
	}
	return ParseTagExpression(expr)
}

// MatchesAll reports whether the filter passes every message.
func (f TagFilter) MatchesAll() bool { return f.tags == nil }

// MatchHash reports whether a consume-queue tag hash passes the filter;
// its signature fits the store's read filter. Hashes compare as Java's
// int32 hash codes. A hash can collide, and the store gives untagged
// messages hash 0, so this is a pre-filter: clients also filter by tag.
func (f TagFilter) MatchHash(tagHash int64) bool {
	if f.tags == nil {
		return true
	}
	h := int32(tagHash)
	for _, c := range f.codes {
		if c == h {
			return true
		}
	}
	return false
}

// MatchTag reports whether a message with this tag passes the filter. A
// message without a tag ("") passes only a match-all filter.
func (f TagFilter) MatchTag(tag string) bool {
	if f.tags == nil {
		return true
	}
	return tag != "" && slices.Contains(f.tags, tag)
}

// Tags returns the filter's tags in expression order, nil for match-all.
func (f TagFilter) Tags() []string { return slices.Clone(f.tags) }

// String returns the normalized expression: "*" or the original text.
func (f TagFilter) String() string {
	if f.tags == nil {
		return "*"
	}
	return f.expr
}

// clientSub is one subscription of one client, with its parsed filter.
type clientSub struct {
	data      SubscriptionData
	filter    TagFilter
	filterErr error
}

// clientGroup is one consumer group as one client declared it.
type clientGroup struct {
	data ConsumerData // SubscriptionDataSet cleared; subs holds it
	subs map[string]*clientSub
}

// regClient is one registered connection.
type regClient struct {
	conn      any
	id        string
	lastSeen  time.Time
	producers map[string]struct{}
	consumers map[string]*clientGroup
}

// groupMembers is the membership of one group. Several connections may
// carry the same client id (a reconnect before the old connection is
// noticed dead); ids counts them so membership changes only when an id
// appears or disappears.
type groupMembers struct {
	clients map[*regClient]struct{}
	ids     map[string]int
}

func (g *groupMembers) add(c *regClient) (changed bool) {
	if _, ok := g.clients[c]; ok {
		return false
	}
	g.clients[c] = struct{}{}
	g.ids[c.id]++
	return g.ids[c.id] == 1
}

func (g *groupMembers) remove(c *regClient) (changed bool) {
	if _, ok := g.clients[c]; !ok {
		return false
	}
	delete(g.clients, c)
	g.ids[c.id]--
	if g.ids[c.id] > 0 {
		return false
	}
	delete(g.ids, c.id)
	return true
}

// GroupInfo describes a producer or consumer group for admin tools.
type GroupInfo struct {
	Name string
	// Consumer is true for a consumer group, false for a producer group.
	Consumer bool
	// ClientIDs lists the live members, sorted.
	ClientIDs []string
	// ConsumeType, MessageModel, ConsumeFromWhere: consumer groups only, as
	// the member heard from most recently declared them.
	ConsumeType, MessageModel, ConsumeFromWhere string
	// Subscriptions holds, per topic, the newest subscription among the
	// members, sorted by topic (consumer groups only).
	Subscriptions []SubscriptionData
}

// ClientRegistry tracks the clients that send HEART_BEAT, by connection,
// and the producer and consumer groups they belong to. The connection
// handle is opaque (the broker passes its *remoting.Conn) and must be
// comparable. Time is passed in explicitly; the registry starts no
// goroutine, the broker calls Expire periodically. Safe for concurrent use.
type ClientRegistry struct {
	log *slog.Logger

	mu        sync.RWMutex
	clients   map[any]*regClient
	consumers map[string]*groupMembers
	producers map[string]*groupMembers
}

// NewClientRegistry returns an empty registry that logs nothing until
// SetLogger is called.
func NewClientRegistry() *ClientRegistry {
	return &ClientRegistry{
		log:       slog.New(slog.DiscardHandler),
		clients:   map[any]*regClient{},
		consumers: map[string]*groupMembers{},
		producers: map[string]*groupMembers{},
	}
}

// SetLogger sets the logger of client arrivals, departures and bad
// subscriptions. Call it before the registry is used.
func (r *ClientRegistry) SetLogger(log *slog.Logger) {
	if log != nil {
		r.log = log
	}
}

// Heartbeat registers or refreshes the client on conn with the groups hb
// declares; a heartbeat lists all of a client's groups, so a group missing
// from it is one the client left. It returns, sorted, the consumer groups
// whose membership (set of client ids) changed: the broker sends
// NOTIFY_CONSUMER_IDS_CHANGED to their members. A change of subscriptions
// alone is not reported: clients rebalance by themselves every 20 s, and
// only the id list decides who gets which queue. The registry keeps hb's
// slices; the caller must not modify them afterwards.
func (r *ClientRegistry) Heartbeat(conn any, hb HeartbeatData, now time.Time) (changedGroups []string) {
	changed := map[string]struct{}{}
	r.mu.Lock()
	defer r.mu.Unlock()

	c := r.clients[conn]
	switch {
	case c == nil:
		c = &regClient{conn: conn, id: hb.ClientID}
		r.clients[conn] = c
		r.log.Info("client registered", "client", hb.ClientID, "producers", len(hb.ProducerDataSet), "consumers", len(hb.ConsumerDataSet))
	case c.id != hb.ClientID:
		// Same connection, new id: leave everything under the old id.
		r.log.Warn("client id changed on a connection", "old", c.id, "new", hb.ClientID)
		r.leaveAll(c, changed)
		c.id = hb.ClientID
	}
	c.lastSeen = now

	producers := make(map[string]struct{}, len(hb.ProducerDataSet))
	for _, p := range hb.ProducerDataSet {
		if p.GroupName != "" {
			producers[p.GroupName] = struct{}{}
		}
	}
	consumers := make(map[string]*clientGroup, len(hb.ConsumerDataSet))
	for _, cd := range hb.ConsumerDataSet {
		if cd.GroupName == "" {
			continue
		}
		g := &clientGroup{data: cd, subs: make(map[string]*clientSub, len(cd.SubscriptionDataSet))}
		g.data.SubscriptionDataSet = nil
		var prev map[string]*clientSub
		if old := c.consumers[cd.GroupName]; old != nil {
			prev = old.subs
		}
		for _, s := range cd.SubscriptionDataSet {
			cs := &clientSub{data: s}
			if p := prev[s.Topic]; p != nil && p.data.SubString == s.SubString && p.data.ExpressionType == s.ExpressionType {
				cs.filter, cs.filterErr = p.filter, p.filterErr // unchanged: no re-parse, no repeated warning
			} else {
				cs.filter, cs.filterErr = s.Filter()
				if cs.filterErr != nil {
					r.log.Warn("bad subscription in heartbeat", "client", c.id, "group", cd.GroupName, "topic", s.Topic, "err", cs.filterErr)
				}
			}
			g.subs[s.Topic] = cs
		}
		consumers[cd.GroupName] = g
	}

	for name := range c.producers {
		if _, ok := producers[name]; !ok {
			leaveGroup(r.producers, name, c)
		}
	}
	for name := range producers {
		joinGroup(r.producers, name, c)
	}
	for name := range c.consumers {
		if _, ok := consumers[name]; !ok {
			if leaveGroup(r.consumers, name, c) {
				changed[name] = struct{}{}
			}
		}
	}
	for name := range consumers {
		if joinGroup(r.consumers, name, c) {
			changed[name] = struct{}{}
		}
	}
	c.producers, c.consumers = producers, consumers
	return sortedGroupNames(changed)
}

// joinGroup adds c to groups[name] and reports whether the id set changed.
func joinGroup(groups map[string]*groupMembers, name string, c *regClient) bool {
	g := groups[name]
	if g == nil {
		g = &groupMembers{clients: map[*regClient]struct{}{}, ids: map[string]int{}}
		groups[name] = g
	}
	return g.add(c)
}

// leaveGroup removes c from groups[name], dropping an empty group, and reports
// whether the id set changed.
func leaveGroup(groups map[string]*groupMembers, name string, c *regClient) bool {
	g := groups[name]
	if g == nil {
		return false
	}
	changed := g.remove(c)
	if len(g.clients) == 0 {
		delete(groups, name)
	}
	return changed
}

// leaveAll removes c from all its groups, adding changed consumer groups
// to changed.
func (r *ClientRegistry) leaveAll(c *regClient, changed map[string]struct{}) {
	for name := range c.producers {
		leaveGroup(r.producers, name, c)
	}
	for name := range c.consumers {
		if leaveGroup(r.consumers, name, c) {
			changed[name] = struct{}{}
		}
	}
	c.producers, c.consumers = nil, nil
}

func sortedGroupNames(m map[string]struct{}) []string {
	if len(m) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(m))
}

// Unregister removes the client on conn (its connection closed) and
// returns, sorted, the consumer groups whose membership changed.
func (r *ClientRegistry) Unregister(conn any) (changedGroups []string) {
	changed := map[string]struct{}{}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.clients[conn]
	if c == nil {
		return nil
	}
	r.log.Info("client unregistered", "client", c.id)
	r.leaveAll(c, changed)
	delete(r.clients, conn)
	return sortedGroupNames(changed)
}

// Expire removes the clients whose last heartbeat is more than timeout
// before now (DefaultClientExpiry is Java's) and returns, sorted, the
// consumer groups whose membership changed.
func (r *ClientRegistry) Expire(now time.Time, timeout time.Duration) (changedGroups []string) {
	changed := map[string]struct{}{}
	r.mu.Lock()
	defer r.mu.Unlock()
	for conn, c := range r.clients {
		if now.Sub(c.lastSeen) <= timeout {
			continue
		}
		r.log.Info("client expired", "client", c.id, "lastHeartbeat", c.lastSeen, "timeout", timeout)
		r.leaveAll(c, changed)
		delete(r.clients, conn)
	}
	return sortedGroupNames(changed)
}

// ClientID returns the id of the client registered on conn.
func (r *ClientRegistry) ClientID(conn any) (string, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c := r.clients[conn]
	if c == nil {
		return "", false
	}
	return c.id, true
}

// ConsumeFromWhere returns where a consumer group starts on a queue it has
// no stored offset for (CONSUME_FROM_LAST_OFFSET, _FIRST_OFFSET or
// _TIMESTAMP), as its member heard from most recently declared it; "" for
// a group with no live member.
func (r *ClientRegistry) ConsumeFromWhere(group string) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	g := r.consumers[group]
	if g == nil {
		return ""
	}
	var last *regClient
	for c := range g.clients {
		if last == nil || c.lastSeen.After(last.lastSeen) || (c.lastSeen.Equal(last.lastSeen) && c.id < last.id) {
			last = c
		}
	}
	if last == nil {
		return ""
	}
	return last.consumers[group].data.ConsumeFromWhere
}

// ConsumerIDs returns the client ids of a consumer group, sorted and
// without duplicates, for GET_CONSUMER_LIST_BY_GROUP.
func (r *ClientRegistry) ConsumerIDs(group string) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	g := r.consumers[group]
	if g == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(g.ids))
}

// Conns returns the connections of a consumer group's members, ordered by
// client id, for NOTIFY_CONSUMER_IDS_CHANGED.
func (r *ClientRegistry) Conns(group string) []any {
	r.mu.RLock()
	defer r.mu.RUnlock()
	g := r.consumers[group]
	if g == nil {
		return nil
	}
	cs := slices.Collect(maps.Keys(g.clients))
	slices.SortFunc(cs, func(a, b *regClient) int {
		if c := strings.Compare(a.id, b.id); c != 0 {
			return c
		}
		return b.lastSeen.Compare(a.lastSeen)
	})
	out := make([]any, len(cs))
	for i, c := range cs {
		out[i] = c.conn
	}
	return out
}

// ProducerConn returns the connection of a live member of a producer group,
// the one heard from most recently, for CHECK_TRANSACTION_STATE.
func (r *ClientRegistry) ProducerConn(group string) (any, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	g := r.producers[group]
	if g == nil {
		return nil, false
	}
	var best *regClient
	for c := range g.clients {
		if best == nil || c.lastSeen.After(best.lastSeen) || (c.lastSeen.Equal(best.lastSeen) && c.id < best.id) {
			best = c
		}
	}
	if best == nil {
		return nil, false
	}
	return best.conn, true
}

// newestSub returns the subscription of group to topic with the highest
// SubVersion among the members (ties: smallest client id), or nil.
// Called with r.mu held.
func (r *ClientRegistry) newestSub(group, topic string) *clientSub {
	g := r.consumers[group]
	if g == nil {
		return nil
	}
	var best *clientSub
	var bestID string
	for c := range g.clients {
		s := c.consumers[group].subs[topic]
		if s == nil {
			continue
		}
		if best == nil || s.data.SubVersion > best.data.SubVersion ||
			(s.data.SubVersion == best.data.SubVersion && c.id < bestID) {
			best, bestID = s, c.id
		}
	}
	return best
}

// Subscription returns the subscription of a consumer group to a topic,
// the newest (highest SubVersion) among the live members. The slices are
// copies.
func (r *ClientRegistry) Subscription(group, topic string) (SubscriptionData, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s := r.newestSub(group, topic)
	if s == nil {
		return SubscriptionData{}, false
	}
	return cloneSub(s.data), true
}

// SubscriptionFilter returns the tag filter of Subscription(group, topic),
// parsed when the heartbeat arrived, so the pull path neither parses nor
// allocates. It fails with ErrNoSubscription when there is no
// subscription and ErrBadExpression when it cannot be parsed.
func (r *ClientRegistry) SubscriptionFilter(group, topic string) (TagFilter, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s := r.newestSub(group, topic)
	if s == nil {
		return TagFilter{}, fmt.Errorf("%w: group %q, topic %q", ErrNoSubscription, group, topic)
	}
	return s.filter, s.filterErr
}

func cloneSub(s SubscriptionData) SubscriptionData {
	s.TagsSet = slices.Clone(s.TagsSet)
	s.CodeSet = slices.Clone(s.CodeSet)
	return s
}

// Groups returns a snapshot of every group: consumer groups first, then
// producer groups, each sorted by name.
func (r *ClientRegistry) Groups() []GroupInfo {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]GroupInfo, 0, len(r.consumers)+len(r.producers))
	for _, name := range slices.Sorted(maps.Keys(r.consumers)) {
		g := r.consumers[name]
		gi := GroupInfo{Name: name, Consumer: true, ClientIDs: slices.Sorted(maps.Keys(g.ids))}
		var last *regClient
		topics := map[string]struct{}{}
		for c := range g.clients {
			if last == nil || c.lastSeen.After(last.lastSeen) || (c.lastSeen.Equal(last.lastSeen) && c.id < last.id) {
				last = c
			}
			for t := range c.consumers[name].subs {
				topics[t] = struct{}{}
			}
		}
		d := last.consumers[name].data
		gi.ConsumeType, gi.MessageModel, gi.ConsumeFromWhere = d.ConsumeType, d.MessageModel, d.ConsumeFromWhere
		for _, t := range slices.Sorted(maps.Keys(topics)) {
			gi.Subscriptions = append(gi.Subscriptions, cloneSub(r.newestSub(name, t).data))
		}
		out = append(out, gi)
	}
	for _, name := range slices.Sorted(maps.Keys(r.producers)) {
		out = append(out, GroupInfo{Name: name, ClientIDs: slices.Sorted(maps.Keys(r.producers[name].ids))})
	}
	return out
}
