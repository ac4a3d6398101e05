package pki

import (
	"encoding/hex"
	"strings"
)

// SubjectCN returns the common name of an RFC 2253 subject DN as nginx's
// $ssl_client_s_dn prints it, e.g. "CN=agent:home,O=Portlama" → "agent:home".
// ok is false when the DN is malformed or has no CN or more than one. The
// panel and the tunnel server both read client identities with it.
func SubjectCN(dn string) (cn string, ok bool) {
	attrs, ok := parseDN(dn)
	if !ok {
		return "", false
	}
	var cns []string
	for _, a := range attrs {
		if strings.EqualFold(a.typ, "CN") || a.typ == "2.5.4.3" {
			cns = append(cns, a.value)
		}
	}
	if len(cns) != 1 {
		return "", false
	}
	return cns[0], true
}

type dnAttr struct{ typ, value string }

// parseDN splits an RFC 2253 DN into its attributes (all RDNs, multi-valued
// RDNs flattened). Escapes (\, \+ \" \\ \XX ...) are decoded; quoted values
// and #hex values are refused (nginx does not print them for our names).
func parseDN(dn string) ([]dnAttr, bool) {
	if dn == "" || len(dn) > 4096 {
		return nil, false
	}
	var attrs []dnAttr
	i := 0
	for {
		// attribute type
		start := i
		for i < len(dn) && dn[i] != '=' {
			c := dn[i]
			if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
				return nil, false
			}
			i++
		}
		if i == len(dn) || i == start {
			return nil, false
		}
		typ := dn[start:i]
		i++ // '='
		if i < len(dn) && (dn[i] == '"' || dn[i] == '#') {
			return nil, false
		}
		var val []byte
		for i < len(dn) && dn[i] != ',' && dn[i] != '+' && dn[i] != ';' {
			c := dn[i]
			if c == '\\' {
				if i+1 >= len(dn) {
					return nil, false
				}
				n := dn[i+1]
				if isHexDigit(n) {
					if i+2 >= len(dn) || !isHexDigit(dn[i+2]) {
						return nil, false
					}
					b, _ := hex.DecodeString(dn[i+1 : i+3])
					val = append(val, b[0])
					i += 3
					continue
				}
				val = append(val, n)
				i += 2
				continue
			}
			if c == '"' || c == '=' || c < 0x20 {
				return nil, false
			}
			val = append(val, c)
			i++
		}
		attrs = append(attrs, dnAttr{typ: typ, value: string(val)})
		if i == len(dn) {
			return attrs, true
		}
		i++ // separator
		if i == len(dn) {
			return nil, false // trailing separator
		}
	}
}

func isHexDigit(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
