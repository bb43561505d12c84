package namesrv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
)

// TierBoundsKey is the name of the tier boundaries, both as a field of
// Registration.Extra and as a top-level field of a topic's route (issue 7,
// read routing).
const TierBoundsKey = "tierBounds"

// ErrBadTierBounds is wrapped by the errors of DecodeRegistrationExtra and
// DecodeRouteTierBounds.
var ErrBadTierBounds = errors.New("namesrv: bad tier bounds")

// QueueHotStarts maps a queue id to the queue's hot-tier start: the first
// queue offset its broker still holds on local disk. Offsets below it, down
// to the first offset of the cold tier, are readable only from the cold
// tier (object storage), so a client may send those reads to a tier reader.
//
// It is encoded as a JSON object with quoted decimal keys in increasing
// numeric order and no whitespace: {"0":1200,"1":1187,"10":990}.
type QueueHotStarts map[int32]int64

// TierBounds are the hot-tier starts of a broker's queues, by topic. A
// broker lists only queues that have messages in the cold tier below their
// hot start; a queue it does not list has nothing that is cold only.
type TierBounds map[string]QueueHotStarts

// RegistrationExtra is what a Strata broker puts in Registration.Extra
// (the REGISTER_BROKER body's "strata" field):
//
//	{"tierBounds":{"<topic>":{"<queueId>":<hotStart>,...},...}}
//
// Topics are sorted by name and queue ids numerically; an empty
// RegistrationExtra encodes as nothing at all (nil Extra).
type RegistrationExtra struct {
	// TierBounds are the broker's per-queue hot-tier starts. Only a
	// leader's (broker id MasterID) reach routes.
	TierBounds TierBounds
}

// Encode returns x as Registration.Extra: nil when x carries nothing,
// else the JSON shown at RegistrationExtra. It checks what
// DecodeRegistrationExtra checks, so a broker finds a bad value before the
// name server ignores it; errors wrap ErrBadTierBounds.
func (x RegistrationExtra) Encode() (json.RawMessage, error) {
	topics := slices.Sorted(maps.Keys(x.TierBounds))
	size := len(`{"` + TierBoundsKey + `":{}}`)
	for topic, qs := range x.TierBounds {
		size += len(topic) + 6 + 20*len(qs) // "T":{} and "id":offset, per queue
	}
	var b []byte
	var ids []int32
	for _, topic := range topics {
		qs := x.TierBounds[topic]
		if len(qs) == 0 {
			continue
		}
		if err := checkTopic(topic); err != nil {
			return nil, fmt.Errorf("%w: topic %q: %v", ErrBadTierBounds, topic, err)
		}
		for id, off := range qs {
			if id < 0 || off < 0 {
				return nil, fmt.Errorf("%w: topic %q: queue %d hot start %d: both must be non-negative", ErrBadTierBounds, topic, id, off)
			}
		}
		if b == nil {
			b = make([]byte, 0, size)
			b = append(b, `{"`+TierBoundsKey+`":{`...)
		} else {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, topic) // topic names are ASCII without '"' or '\\'
		b = append(b, ':')
		ids = slices.AppendSeq(ids[:0], maps.Keys(qs))
		b = qs.appendSorted(b, ids)
	}
	if b == nil {
		return nil, nil
	}
	return append(b, "}}"...), nil
}

// MarshalJSON implements json.Marshaler (see QueueHotStarts).
func (qs QueueHotStarts) MarshalJSON() ([]byte, error) {
	return qs.appendJSON(nil), nil
}

func (qs QueueHotStarts) appendJSON(b []byte) []byte {
	return qs.appendSorted(b, slices.Collect(maps.Keys(qs)))
}

// appendSorted appends qs's JSON; ids are its keys, which it sorts.
func (qs QueueHotStarts) appendSorted(b []byte, ids []int32) []byte {
	slices.Sort(ids)
	b = append(b, '{')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = strconv.AppendInt(b, int64(id), 10)
		b = append(b, '"', ':')
		b = strconv.AppendInt(b, qs[id], 10)
	}
	return append(b, '}')
}

// UnmarshalJSON implements json.Unmarshaler: an object whose keys are
// queue ids (non-negative decimal int32 without sign or leading zeros) and
// whose values are non-negative integers.
func (qs *QueueHotStarts) UnmarshalJSON(b []byte) error {
	var raw map[string]int64
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if raw == nil {
		*qs = nil
		return nil
	}
	m := make(QueueHotStarts, len(raw))
	for k, off := range raw {
		id, err := parseQueueID(k)
		if err != nil {
			return err
		}
		if off < 0 {
			return fmt.Errorf("queue %d: hot start %d is negative", id, off)
		}
		m[id] = off
	}
	*qs = m
	return nil
}

// parseQueueID accepts the canonical decimal form of a non-negative int32,
// so that no two keys name the same queue.
func parseQueueID(k string) (int32, error) {
	id, err := strconv.ParseInt(k, 10, 32)
	if err != nil || id < 0 || strconv.FormatInt(id, 10) != k {
		return 0, fmt.Errorf("key %q is not a queue id", k)
	}
	return int32(id), nil
}

// DecodeRegistrationExtra parses Registration.Extra as a Strata broker
// writes it (RegistrationExtra). Empty or null is nothing; fields other
// than "tierBounds" are ignored (room for later additions); "tierBounds"
// null or absent means no bounds. Every topic name must be valid (as in
// Registration.Topics), every queue id a canonical non-negative int32 and
// every hot start a non-negative integer; topics with no queues are
// dropped. Errors wrap ErrBadTierBounds.
func DecodeRegistrationExtra(extra []byte) (RegistrationExtra, error) {
	trimmed := bytes.TrimSpace(extra)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return RegistrationExtra{}, nil
	}
	var w struct {
		TierBounds map[string]QueueHotStarts `json:"tierBounds"`
	}
	if err := json.Unmarshal(trimmed, &w); err != nil {
		return RegistrationExtra{}, fmt.Errorf("%w: %w", ErrBadTierBounds, err)
	}
	var x RegistrationExtra
	for topic, qs := range w.TierBounds {
		if err := checkTopic(topic); err != nil {
			return RegistrationExtra{}, fmt.Errorf("%w: topic %q: %v", ErrBadTierBounds, topic, err)
		}
		if len(qs) == 0 {
			continue
		}
		if x.TierBounds == nil {
			x.TierBounds = make(TierBounds, len(w.TierBounds))
		}
		x.TierBounds[topic] = qs
	}
	return x, nil
}

// DecodeRouteTierBounds returns the tier boundaries of a route (RouteData
// from DecodeRouteData): each broker name's queue hot starts, from the
// route's "tierBounds" field,
//
//	{"<brokerName>":{"<queueId>":<hotStart>,...},...}
//
// nil when the route has none. Errors wrap ErrBadTierBounds.
func DecodeRouteTierBounds(r RouteData) (map[string]QueueHotStarts, error) {
	raw, ok := r.Extra[TierBoundsKey]
	if !ok {
		return nil, nil
	}
	var m map[string]QueueHotStarts
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: route: %w", ErrBadTierBounds, err)
	}
	return m, nil
}

// leaderBounds is the tier boundaries of one leader's registration, kept
// by the Table ready for routes: each topic's QueueHotStarts as its JSON,
// for the topics the registration routes.
type leaderBounds struct {
	topics map[string][]byte // topic -> {"0":12,...}, usually a sub-slice of the entry's Extra
	queues int
}

// count returns how many queues lb has bounds for (0 for nil).
func (lb *leaderBounds) count() int {
	if lb == nil {
		return 0
	}
	return lb.queues
}

// buildLeaderBounds decodes extra and keeps the bounds of the topics in
// topics. A decoding error leaves no bounds. extra must be compacted (as
// checkRegistration leaves it) and is retained: in the usual case, the
// canonical encoding RegistrationExtra.Encode writes, each topic's JSON is
// a sub-slice of it, found by one pass without maps or allocations per
// queue; anything else goes through DecodeRegistrationExtra.
func buildLeaderBounds(extra json.RawMessage, topics map[string]TopicConfig) (*leaderBounds, error) {
	lb := &leaderBounds{topics: make(map[string][]byte)}
	if !scanCanonicalBounds(extra, func(topic string, qb []byte, n int) {
		if _, ok := topics[topic]; ok {
			lb.topics[topic] = qb[:len(qb):len(qb)]
			lb.queues += n
		}
	}) {
		x, err := DecodeRegistrationExtra(extra)
		if err != nil {
			return nil, err
		}
		clear(lb.topics)
		lb.queues = 0
		for topic, qs := range x.TierBounds {
			if _, ok := topics[topic]; ok {
				lb.topics[topic] = qs.appendJSON(nil)
				lb.queues += len(qs)
			}
		}
	}
	if len(lb.topics) == 0 {
		return nil, nil
	}
	return lb, nil
}

// scanCanonicalBounds reads b if it is exactly what RegistrationExtra.Encode
// writes: {"tierBounds":{"<topic>":{"<id>":<off>,...},...}}, with valid
// topic names in increasing order, canonical queue ids in increasing
// numeric order, non-negative int64 offsets, no whitespace, no other field
// and no empty topic. It calls found for each topic with the topic's JSON
// (a sub-slice of b) and its number of queues, and reports whether b had
// that form; if not, found may have been called for some topics, and the
// caller must decode b another way.
func scanCanonicalBounds(b []byte, found func(topic string, qb []byte, n int)) bool {
	const head = `{"` + TierBoundsKey + `":{`
	if len(b) < len(head)+2 || string(b[:len(head)]) != head || string(b[len(b)-2:]) != "}}" {
		return false
	}
	p := len(head)
	end := len(b) - 2
	prevTopic := ""
	for p < end {
		if p > len(head) {
			if b[p] != ',' {
				return false
			}
			p++
		}
		// "topic":
		if p >= end || b[p] != '"' {
			return false
		}
		q := p + 1
		for q < end && b[q] != '"' {
			q++
		}
		if q+1 >= end || b[q+1] != ':' {
			return false
		}
		topic := string(b[p+1 : q])
		if checkTopic(topic) != nil || (prevTopic != "" && topic <= prevTopic) {
			return false
		}
		prevTopic = topic
		p = q + 2
		// {"id":off,...}
		start := p
		if p >= end || b[p] != '{' {
			return false
		}
		p++
		n := 0
		prevID := int64(-1)
		for {
			if p >= end {
				return false
			}
			if b[p] == '}' && n > 0 {
				p++
				break
			}
			if n > 0 {
				if b[p] != ',' {
					return false
				}
				p++
			}
			id, next, ok := scanDigits(b, p+1, end, 10) // int32: at most 10 digits
			if !ok || p >= end || b[p] != '"' || next+1 >= end || b[next] != '"' || b[next+1] != ':' ||
				id > math.MaxInt32 || id <= prevID {
				return false
			}
			prevID = id
			_, p, ok = scanDigits(b, next+2, end, 19) // int64: at most 19 digits
			if !ok {
				return false
			}
			n++
		}
		found(topic, b[start:p], n)
	}
	return p == end
}

// scanDigits reads a canonical non-negative decimal (no sign, no leading
// zero) of at most maxDigits digits from b[p:end], returning its value and
// the position after it. A 19-digit value must still fit an int64.
func scanDigits(b []byte, p, end, maxDigits int) (v int64, next int, ok bool) {
	q := p
	for q < end && b[q] >= '0' && b[q] <= '9' {
		q++
	}
	n := q - p
	if n == 0 || n > maxDigits || (n > 1 && b[p] == '0') {
		return 0, p, false
	}
	if q < end && (b[q] == '.' || b[q] == 'e' || b[q] == 'E') {
		return 0, p, false
	}
	for _, c := range b[p:q] {
		d := int64(c - '0')
		if v > (math.MaxInt64-d)/10 {
			return 0, p, false
		}
		v = v*10 + d
	}
	return v, q, true
}
