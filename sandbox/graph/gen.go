package graph

import "strconv"

// mix is the splitmix64 finalizer: a fast, well-spread 64-bit hash step.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// word is a display word and its ASCII slug (for e-mail addresses).
type word struct{ text, slug string }

var (
	namePrefixes = []word{
		{"Fjord", "fjord"}, {"Nordlys", "nordlys"}, {"Bergen", "bergen"}, {"Viking", "viking"},
		{"Polar", "polar"}, {"Aurora", "aurora"}, {"Troll", "troll"}, {"Kyst", "kyst"},
		{"Fjell", "fjell"}, {"Skog", "skog"}, {"Havbris", "havbris"}, {"Midnattsol", "midnattsol"},
		{"Lofoten", "lofoten"}, {"Tromsø", "tromso"}, {"Stavanger", "stavanger"}, {"Vestland", "vestland"},
		{"Østlandet", "ostlandet"}, {"Sørlandet", "sorlandet"}, {"Ålesund", "alesund"}, {"Bjørk", "bjork"},
		{"Nordic", "nordic"}, {"Arctic", "arctic"}, {"Hardanger", "hardanger"}, {"Trønder", "tronder"},
	}
	nameTrades = []word{
		{"Handel", "handel"}, {"Bygg", "bygg"}, {"Transport", "transport"}, {"Consulting", "consulting"},
		{"Elektro", "elektro"}, {"Maskin", "maskin"}, {"Data", "data"}, {"Regnskap", "regnskap"},
		{"Marine", "marine"}, {"Energi", "energi"}, {"Design", "design"}, {"Eiendom", "eiendom"},
		{"Logistikk", "logistikk"}, {"Sjømat", "sjomat"}, {"Mat", "mat"}, {"Rør", "ror"},
	}
	nameForms   = []string{"AS", "AS", "AS", "AS", "ASA", "ANS", "DA", "AB", "ApS", "Enk."}
	mailLocals  = []string{"post", "firmapost", "faktura", "kontakt", "ordre", "regnskap"}
	firstNames  = []string{"Kari", "Ola", "Ingrid", "Lars", "Sofie", "Jonas", "Emma", "Henrik", "Nora", "Magnus", "Åse", "Bjørn", "Sigrid", "Håkon"}
	lastNames   = []string{"Nordmann", "Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Kristiansen", "Jensen", "Berg", "Haugen", "Bakke", "Sæther"}
	ledgerNames = []string{
		"Forskning og utvikling", "Konsesjoner", "Patenter", "Goodwill", "Tomter", "Bygninger",
		"Maskiner og anlegg", "Inventar", "Kontormaskiner", "Varelager", "Kundefordringer",
		"Andre fordringer", "Kasse", "Bankinnskudd", "Aksjekapital", "Annen egenkapital",
		"Leverandørgjeld", "Skyldig merverdiavgift", "Skyldig arbeidsgiveravgift", "Salgsinntekt, avgiftspliktig",
		"Salgsinntekt, avgiftsfri", "Varekostnad", "Lønn til ansatte", "Arbeidsgiveravgift", "Husleie",
		"Lys, varme", "Telefon", "Porto", "Reisekostnad", "Reklamekostnad", "Renteinntekt", "Rentekostnad",
	}
	taxCodes = []int64{0, 1, 1, 3, 3, 5, 6, 11, 13}
)

// product is a line item of the generated orders.
type product struct {
	description, unit  string
	minPrice, maxPrice int64 // cents
}

var products = []product{
	{"Kaffe, hele bønner 1 kg", "stk", 14900, 32900},
	{"Kopipapir A4 500 ark", "pakke", 4900, 8900},
	{"Skrivebordslampe LED", "stk", 29900, 129900},
	{"Kontorstol ergonomisk", "stk", 199900, 899900},
	{"Laksefilet, fersk", "kg", 12900, 34900},
	{"Tørrfisk, Lofoten", "kg", 29900, 69900},
	{"Konsulenttime", "time", 95000, 185000},
	{"Frakt", "stk", 9900, 49900},
	{"Trelast 48x98", "m", 2900, 6900},
	{"Gipsplate 12,5 mm", "stk", 12900, 19900},
	{"Kabel 3x2,5 mm²", "m", 1290, 2990},
	{"Bærbar PC 14\"", "stk", 899900, 2499900},
	{"Serviceavtale, måned", "mnd", 49900, 299900},
	{"Diesel", "l", 1890, 2590},
	{"Arbeidsklær, jakke", "stk", 79900, 199900},
	{"Reparasjon, verksted", "time", 89000, 139000},
}

func pickWord(l []word, h uint64) word       { return l[h%uint64(len(l))] }
func pickString(l []string, h uint64) string { return l[h%uint64(len(l))] }

func companyName(h uint64) string {
	return pickWord(namePrefixes, h).text + " " + pickWord(nameTrades, h>>8).text + " " + pickString(nameForms, h>>16)
}

func personName(h uint64) string {
	return pickString(firstNames, h) + " " + pickString(lastNames, h>>8)
}

// appendDigits appends v as exactly n decimal digits (zero padded).
func appendDigits(dst []byte, v uint64, n int) []byte {
	var buf [20]byte
	for i := n - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, buf[:n]...)
}

// phoneNumber is a Norwegian mobile number: +47 9xx xx xxx.
func phoneNumber(h uint64) string {
	var arr [16]byte
	b := append(arr[:0], "+47 "...)
	b = append(b, byte('4'+h%2*5))
	b = appendDigits(b, h>>1%100, 2)
	b = append(b, ' ')
	b = appendDigits(b, h>>8%100, 2)
	b = append(b, ' ')
	b = appendDigits(b, h>>16%1000, 3)
	return string(b)
}

func itoa(v int) string { return strconv.Itoa(v) }
