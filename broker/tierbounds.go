package broker

import (
	"time"

	"github.com/strata-mq/strata/namesrv"
)

// Tier bounds (read routing, issue 7): with each registration the broker
// tells the name servers, per queue, where its hot tier starts, for the
// queues that have messages only in the cold tier below that point. Name
// servers put them in topic routes, so clients can send cold reads to tier
// readers.

// tierBounds returns the hot-tier start of every queue whose cold-tier
// range begins below it, by topic: the offsets [cold first, hot start) are
// readable only from the cold tier. Nil without a cold tier, before its
// manifest is loaded, when nothing is cold only, and on any broker but the
// leader (broker id 0): name servers route by the leader's bounds alone.
func (b *Broker) tierBounds() namesrv.TierBounds {
	if b.tier == nil || b.store == nil || !b.leads() {
		return nil
	}
	m, err := b.tier.Manifest()
	if err != nil {
		return nil
	}
	var out namesrv.TierBounds
	for _, q := range m.Queues() {
		hs, ok := hotStart(q.First, q.Next, b.store.MinOffset(q.Topic, q.QueueID), b.store.MaxOffset(q.Topic, q.QueueID))
		if !ok {
			continue
		}
		if out == nil {
			out = namesrv.TierBounds{}
		}
		qs := out[q.Topic]
		if qs == nil {
			qs = namesrv.QueueHotStarts{}
			out[q.Topic] = qs
		}
		qs[q.QueueID] = hs
	}
	return out
}

// hotStart is a queue's hot-tier start given its cold range [coldFirst,
// coldNext) and its hot range [hotMin, hotMax): hotMin, or coldNext when the
// hot tier holds nothing of the queue (never written here, or trimmed to
// empty), since everything below coldNext is then cold. cold reports
// whether some offsets are only in the cold tier (coldFirst < the start).
func hotStart(coldFirst, coldNext, hotMin, hotMax int64) (start int64, cold bool) {
	start = hotMin
	if hotMax == 0 || hotMin >= hotMax {
		start = coldNext
	}
	return start, coldFirst < start
}

// tierBoundsInterval is how often the retention loop looks for changes
// of the tier bounds, and the least time between the extra registrations
// it asks for.
const tierBoundsInterval = time.Second

// tierBoundsWatch notices when the tier bounds may have changed (a hot
// segment was deleted, by the broker's retention loop or the store's own
// retention, or the manifest changed) and asks backgroundLoop for an early
// registration, at most once per tierBoundsInterval, so that routes do not
// wait up to RegisterInterval for them. The retention loop owns it and
// calls check on each of its turns.
type tierBoundsWatch struct {
	seen     tierBoundsVersion
	pending  bool
	lastKick time.Time
}

// tierBoundsVersion changes whenever the tier bounds may have changed: the
// hot log's first offset (segment deletion) and the manifest's last
// sequence and length (offload, reload).
type tierBoundsVersion struct {
	hotLogStart int64
	manifestSeq int64
	manifestLen int
}

func (b *Broker) tierBoundsVersion() tierBoundsVersion {
	var v tierBoundsVersion
	if segs := b.store.Segments(); len(segs) > 0 {
		v.hotLogStart = segs[0].Base
	}
	if b.tier != nil {
		if m, err := b.tier.Manifest(); err == nil {
			v.manifestSeq, v.manifestLen = m.LastSeq(), m.Len()
		}
	}
	return v
}

// check compares the tier bounds' version with the last one seen and kicks
// a registration when it changed, unless one was kicked less than
// tierBoundsInterval ago (then it stays pending for a later check).
func (w *tierBoundsWatch) check(b *Broker, now time.Time) {
	if len(b.cfg.NameServers) == 0 {
		return
	}
	// The first check finds a change too: the registration at start may
	// have preceded the manifest's load.
	if v := b.tierBoundsVersion(); v != w.seen {
		w.seen, w.pending = v, true
	}
	if w.pending && now.Sub(w.lastKick) >= tierBoundsInterval {
		w.pending, w.lastKick = false, now
		b.kickRegister()
	}
}
