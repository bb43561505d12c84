// Package ha replicates a broker's commit log to its followers.
//
// A broker group is one broker name: a leader (broker id 0) and followers
// (ids 1 and up). Each follower dials the leader's replication port (10912
// by default), says where its log ends, and from then on receives the
// leader's log bytes from that offset as a stream. It appends them with
// store.AppendRaw, so every replica holds the same bytes at the same log
// offsets and builds its consume queues and key index from them, and acks
// each offset once it is durable on its disk. The leader counts a follower
// as in sync while it has caught up with the leader's log end within
// MaxLag; under sync replication a send is acknowledged once MinInSync
// copies (the leader's included) hold it, and refused at once when fewer
// than that are in sync.
//
// # Wire protocol
//
// All integers are big-endian. The follower opens with a hello:
//
//	magic "STRP" | version u8 (1) | flags u8 | name length u16 |
//	broker id i64 | segment size i64 | log end i64 |
//	epoch of the log's last bytes i64 | broker name
//
// Flag 1 says the follower's log holds no bytes (it was rebuilt from the
// cold tier and starts where it ends), so nothing in it can have diverged.
// The leader answers:
//
//	magic "STRP" | status u8 | 0 u8 | message length u16 |
//	start offset i64 | leader log end i64 | leader epoch i64 |
//	epoch count u32 | message | epoch count × (epoch i64 | start i64)
//
// Status 0 accepts and streaming starts at the start offset; the follower
// keeps the leader's epochs before it appends anything. Status 6 tells the
// follower that its log diverged from the leader's at the start offset
// (Kafka's rule: where the follower's last epoch ended on the leader): it
// truncates there and says hello again. Any other status refuses the
// follower with the message (another broker name, a segment size that
// differs, a log that ends past the leader's or before the leader's first
// offset, a leader that does not lead or leads an older epoch) and the
// leader closes the connection. A follower refused because its log ends
// before the leader's first offset rebuilds from the cold tier, which
// holds what the leader deleted, when it has one.
//
// Then the leader sends frames, each
//
//	log offset i64 | leader log end i64 | length u32 | log bytes
//
// where the bytes are whole records (and segment end markers) exactly as in
// the leader's log, starting at the offset where the previous frame ended
// (or at the next segment after a marker). A frame of length 0 is a
// heartbeat, sent after a second without data. The follower answers every
// frame with the log end it has made durable:
//
//	durable log end i64
//
// Either side closes the connection when the other is silent for several
// heartbeats, when a frame does not continue the log, or on any error; the
// follower then dials again with its new log end.
package ha
