package remoting

// QuoteBareKeys returns b with every object key that is a bare integer
// (Java fastjson's {0:"addr"}) put in quotes, so that encoding/json can
// read it; other bytes are unchanged. Outside strings, a key is what
// follows '{' or ',' (after whitespace) and precedes ':'. In valid JSON no
// number sits there, so valid input comes back as is (the same slice).
func QuoteBareKeys(b []byte) []byte {
	var out []byte
	last := 0
	inStr, esc := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		if c == '"' {
			inStr = true
			continue
		}
		if c != '{' && c != ',' {
			continue
		}
		j := skipJSONSpace(b, i+1)
		k := j
		if k < len(b) && b[k] == '-' {
			k++
		}
		for k < len(b) && b[k] >= '0' && b[k] <= '9' {
			k++
		}
		if k == j || (k == j+1 && b[j] == '-') {
			continue
		}
		if m := skipJSONSpace(b, k); m >= len(b) || b[m] != ':' {
			continue
		}
		out = append(out, b[last:j]...)
		out = append(out, '"')
		out = append(out, b[j:k]...)
		out = append(out, '"')
		last = k
		i = k - 1
	}
	if out == nil {
		return b
	}
	return append(out, b[last:]...)
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
