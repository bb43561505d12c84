package remoting

import (
	"strconv"
	"unicode/utf8"
)

// decodeJSONHeaderFast decodes the JSON header in the shape clients send
// (the seven known keys, integers, strings, extFields an object of strings)
// without reflection: encoding/json took a fifth of the broker's CPU under
// load. It reports false for anything else (unknown keys, null, floats,
// out-of-range numbers, invalid UTF-8, surrogate escapes, trailing bytes),
// and the caller then uses encoding/json, so the result is always what
// encoding/json would give.
func decodeJSONHeaderFast(b []byte) (*Command, bool) {
	p := jsonParser{b: b}
	if !p.consume('{') {
		return nil, false
	}
	cmd := &Command{}
	seenExt := false
	if p.consume('}') {
		return cmd, p.end()
	}
	for {
		key, ok := p.rawString()
		if !ok || !p.consume(':') {
			return nil, false
		}
		switch string(key) {
		case "code":
			n, ok := p.int(16)
			if !ok {
				return nil, false
			}
			cmd.Code = int16(n)
		case "version":
			n, ok := p.int(16)
			if !ok {
				return nil, false
			}
			cmd.Version = int16(n)
		case "opaque":
			n, ok := p.int(32)
			if !ok {
				return nil, false
			}
			cmd.Opaque = int32(n)
		case "flag":
			n, ok := p.int(32)
			if !ok {
				return nil, false
			}
			cmd.Flag = int32(n)
		case "language":
			s, ok := p.rawString()
			if !ok {
				return nil, false
			}
			cmd.Language = string(s)
		case "remark":
			s, ok := p.rawString()
			if !ok {
				return nil, false
			}
			cmd.Remark = string(s)
		case "extFields":
			m, ok := p.stringMap()
			if !ok || seenExt { // encoding/json merges repeated objects
				return nil, false
			}
			seenExt = true
			cmd.ExtFields = m
		default:
			return nil, false
		}
		if p.consume(',') {
			continue
		}
		if p.consume('}') {
			return cmd, p.end()
		}
		return nil, false
	}
}

type jsonParser struct {
	b []byte
	i int
}

func (p *jsonParser) skipSpace() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) consume(c byte) bool {
	p.skipSpace()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// end reports whether only whitespace follows.
func (p *jsonParser) end() bool {
	p.skipSpace()
	return p.i == len(p.b)
}

// rawString reads a string of valid UTF-8 with no control characters and
// returns its decoded bytes. Escapes are decoded (\u0001 and \u0002 separate
// every properties string); a \u escape of a surrogate declines, as do
// invalid ones.
func (p *jsonParser) rawString() ([]byte, bool) {
	if !p.consume('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, utf8.Valid(s)
		case c == '\\':
			return p.escapedString(start)
		case c < 0x20:
			return nil, false
		}
		p.i++
	}
	return nil, false
}

// escapedString continues rawString at the first backslash.
func (p *jsonParser) escapedString(start int) ([]byte, bool) {
	out := append([]byte(nil), p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return out, utf8.Valid(out)
		case c < 0x20:
			return nil, false
		case c != '\\':
			out = append(out, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.b) {
			return nil, false
		}
		e := p.b[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if p.i+4 > len(p.b) {
				return nil, false
			}
			r, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 32)
			if err != nil || (r >= 0xD800 && r < 0xE000) {
				return nil, false
			}
			p.i += 4
			out = utf8.AppendRune(out, rune(r))
		default:
			return nil, false
		}
	}
	return nil, false
}

// int reads an integer written as -?[0-9]+ that fits in bits.
func (p *jsonParser) int(bits int) (int64, bool) {
	p.skipSpace()
	start := p.i
	if p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	digits := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	if p.i == digits || (p.b[digits] == '0' && p.i-digits > 1) {
		return 0, false // no digits, or a leading zero JSON forbids
	}
	if p.i < len(p.b) {
		switch p.b[p.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(p.b[start:p.i]), 10, bits)
	return n, err == nil
}

// stringMap reads an object of string values; an empty one gives nil, as
// the Command's ExtFields convention wants.
func (p *jsonParser) stringMap() (map[string]string, bool) {
	if !p.consume('{') {
		return nil, false
	}
	if p.consume('}') {
		return nil, true
	}
	m := make(map[string]string, 16)
	for {
		k, ok := p.rawString()
		if !ok || !p.consume(':') {
			return nil, false
		}
		v, ok := p.rawString()
		if !ok {
			return nil, false
		}
		m[string(k)] = string(v)
		if p.consume(',') {
			continue
		}
		if p.consume('}') {
			return m, true
		}
		return nil, false
	}
}
