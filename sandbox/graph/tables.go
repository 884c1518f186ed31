package graph

import "strings"

// Table ids: the position of each table in companyTables.
const (
	tidAssociate = iota
	tidGeneralLedgerAccount
	tidOrder
	tidOrderLine
	tidCountry
)

// country is one row of the fixed Country table; countryNo is the dialling
// code, as in Visma Business.
type country struct {
	no         int64
	name, iso  string
	currencyNo int64
}

var countries = []country{
	{1, "USA", "US", 1},
	{31, "Nederland", "NL", 49},
	{33, "Frankrike", "FR", 49},
	{34, "Spania", "ES", 49},
	{39, "Italia", "IT", 49},
	{44, "Storbritannia", "GB", 44},
	{45, "Danmark", "DK", 45},
	{46, "Sverige", "SE", 46},
	{47, "Norge", "NO", 47},
	{48, "Polen", "PL", 48},
	{49, "Tyskland", "DE", 49},
	{353, "Irland", "IE", 49},
	{354, "Island", "IS", 354},
	{358, "Finland", "FI", 49},
}

// exchangeRates are NOK per unit of each currencyNo, scaled by 10^4.
var exchangeRates = map[int64]int64{1: 103000, 44: 135000, 45: 15800, 46: 9700, 47: 10000, 48: 27500, 49: 117000, 354: 810}

// Associate kinds by index: idx%5 != 4 is a customer, idx%5 >= 3 a supplier.
func isCustomer(idx int) bool { return idx%5 != 4 }
func isSupplier(idx int) bool { return idx%5 >= 3 }

const (
	customerBase = 10000
	supplierBase = 50000
)

func associateCountry(r *row) int64 {
	h := r.h(6)
	switch p := h % 100; {
	case p < 70:
		return 47
	case p < 80:
		return 46
	case p < 87:
		return 45
	case p < 92:
		return 49
	}
	return countries[(h>>8)%uint64(len(countries))].no
}

// orderCustomer is the index of the associate an order is for (always a
// customer), or -1 when there are no associates.
func orderCustomer(r *row) int {
	na := r.cs.tabs[tidAssociate].n
	if na == 0 {
		return -1
	}
	a := int(r.h(3) % uint64(na))
	if !isCustomer(a) {
		a-- // idx%5 == 4, so idx%5 == 3 is a customer
	}
	return a
}

func orderCurrency(r *row) int64 {
	a := orderCustomer(r)
	if a < 0 {
		return 47
	}
	ar := r.cs.row(r.cs.tabs[tidAssociate], a)
	cn := associateCountry(&ar)
	for _, c := range countries {
		if c.no == cn {
			return c.currencyNo
		}
	}
	return 47
}

// permutations of {1,2,3,4,5}: the line counts of a block of five orders.
var linePerms = func() [][5]int {
	var out [][5]int
	var rec func(p [5]int, used int, k int)
	rec = func(p [5]int, used int, k int) {
		if k == 5 {
			out = append(out, p)
			return
		}
		for v := 1; v <= 5; v++ {
			if used&(1<<v) == 0 {
				p[k] = v
				rec(p, used|1<<v, k+1)
			}
		}
	}
	rec([5]int{}, 0, 0)
	return out
}()

// linesPerBlock is the number of order lines of a block of five orders.
const linesPerBlock = 15

// lineAddr maps an orderLine index to its order index and lineNo: orders come
// in blocks of five whose line counts are a permutation of 1..5, so lines of
// one order are contiguous and the orderLine table covers the first orders.
func lineAddr(ts *tableState, idx int) (orderIdx int, lineNo int) {
	b, rem := idx/linesPerBlock, idx%linesPerBlock
	perm := linePerms[mix(ts.seed^uint64(b)*0xa0761d6478bd642f)%uint64(len(linePerms))]
	acc := 0
	for j, c := range perm {
		if rem < acc+c {
			return b*5 + j, rem - acc + 1
		}
		acc += c
	}
	panic("graph: line block overflow")
}

func lineProduct(r *row) product { return products[r.h(2)%uint64(len(products))] }

func lineQuantity(r *row) int64 { // scale 3
	p := lineProduct(r)
	h := r.hv(4)
	if p.unit == "kg" || p.unit == "l" || p.unit == "m" {
		return 100 + int64(h%50_000)
	}
	return (1 + int64(h%24)) * 1000
}

func linePrice(r *row) int64 { // scale 2
	p := lineProduct(r)
	return p.minPrice + int64(r.h(5)%uint64(p.maxPrice-p.minPrice+1))
}

var discounts = []int64{0, 0, 0, 0, 0, 500, 1000, 1500, 2500}

func lineDiscount(r *row) int64 { return discounts[r.h(6)%uint64(len(discounts))] } // scale 2

func lineAmount(r *row) int64 { // scale 2, rounded half up
	num := lineQuantity(r) * linePrice(r) * (10000 - lineDiscount(r))
	const den = 1000 * 10000
	return (num + den/2) / den
}

func orderDate(r *row) int64 { return r.createdDate() }

// companyTables is the model: the four Visma tables the sandbox serves plus
// the small Country table they join up to.
func companyTables() []*table {
	return []*table{
		{
			name: "Associate", field: "associate",
			description: "Customers, suppliers and other business partners.",
			key:         []string{"associateNo"},
			columns: []*column{
				{name: "associateNo", typ: typeInt, description: "Associate number (key).",
					gen: func(r *row) value { return intValue(int64(r.idx) + 1) }},
				{name: "name", typ: typeString, description: "Name.",
					gen: func(r *row) value { return strValue(companyName(r.h(1))) }},
				{name: "shortName", typ: typeString, description: "Short name, used in searches.",
					gen: func(r *row) value {
						return strValue(strings.ToUpper(pickWord(namePrefixes, r.h(1)).slug) + itoa(r.idx+1))
					}},
				{name: "customerNo", typ: typeInt, description: "Customer number; 0 when the associate is not a customer.",
					gen: func(r *row) value {
						if !isCustomer(r.idx) {
							return intValue(0)
						}
						return intValue(customerBase + int64(r.idx) + 1)
					},
					lookup: func(r *row, v int64) (int, bool) {
						idx := v - customerBase - 1
						if v <= customerBase || idx >= int64(r.ts.n) || !isCustomer(int(idx)) {
							return 0, false
						}
						return int(idx), true
					}},
				{name: "supplierNo", typ: typeInt, description: "Supplier number; 0 when the associate is not a supplier.",
					gen: func(r *row) value {
						if !isSupplier(r.idx) {
							return intValue(0)
						}
						return intValue(supplierBase + int64(r.idx) + 1)
					}},
				{name: "countryNo", typ: typeInt, description: "Country (dialling code).",
					gen: func(r *row) value { return intValue(associateCountry(r)) }},
				{name: "emailAddress", typ: typeString, description: "E-mail address.",
					gen: func(r *row) value {
						h := r.h(1)
						return strValue(pickString(mailLocals, r.hv(7)) + "@" + pickWord(namePrefixes, h).slug + pickWord(nameTrades, h>>8).slug + ".no")
					}},
				{name: "phone", typ: typeString, description: "Phone number.",
					gen: func(r *row) value { return strValue(phoneNumber(r.hv(8))) }},
				{name: "gln", typ: typeLong, description: "Global location number (EHF); null when unknown.",
					gen: func(r *row) value {
						h := r.h(9)
						if h%2 == 0 {
							return nullValue
						}
						return intValue(7080000000000 + int64(h>>1%1_000_000_000))
					}},
				{name: "createdDate", typ: typeInt, description: "Date created (yyyymmdd).",
					gen: func(r *row) value { return intValue(r.createdDate()) }},
			},
			relations: []*relation{
				{field: "joinup_Country", kind: joinUp, target: "country", from: []string{"countryNo"}, to: []string{"countryNo"},
					description: "The associate's country."},
			},
		},
		{
			name: "GeneralLedgerAccount", field: "generalLedgerAccount",
			description: "The chart of accounts.",
			key:         []string{"accountNo"},
			columns: []*column{
				{name: "accountNo", typ: typeInt, description: "Account number (key).",
					gen: func(r *row) value { return intValue(1000 + 10*int64(r.idx)) }},
				{name: "name", typ: typeString, description: "Account name.",
					gen: func(r *row) value {
						n := ledgerNames[r.idx%len(ledgerNames)]
						if k := r.idx / len(ledgerNames); k > 0 {
							n += " " + itoa(k+1)
						}
						return strValue(n)
					}},
				{name: "accountGroup", typ: typeInt, description: "Account group (the account number's first digits).",
					gen: func(r *row) value { return intValue((1000 + 10*int64(r.idx)) / 100) }},
				{name: "accountType", typ: typeInt, description: "1 balance sheet, 2 profit and loss.",
					gen: func(r *row) value {
						if (1000+10*r.idx)/1000%10 <= 2 {
							return intValue(1)
						}
						return intValue(2)
					}},
				{name: "taxCode", typ: typeInt, description: "Default tax code.",
					gen: func(r *row) value { return intValue(taxCodes[r.h(2)%uint64(len(taxCodes))]) }},
				{name: "currencyNo", typ: typeInt, description: "Currency; 0 for any currency.",
					gen: func(r *row) value {
						if r.h(3)%5 == 0 {
							return intValue(47)
						}
						return intValue(0)
					}},
				{name: "blocked", typ: typeBoolean, description: "Blocked for posting.",
					gen: func(r *row) value { return boolValue(r.hv(4)%25 == 0) }},
				{name: "createdDate", typ: typeInt, description: "Date created (yyyymmdd).",
					gen: func(r *row) value { return intValue(r.createdDate()) }},
			},
		},
		{
			name: "Order", field: "order",
			description: "Sales orders.",
			key:         []string{"orderNo"},
			columns: []*column{
				{name: "orderNo", typ: typeInt, description: "Order number (key).",
					gen: func(r *row) value { return intValue(int64(r.idx) + 1) }},
				{name: "orderDate", typ: typeInt, description: "Order date (yyyymmdd).",
					gen: func(r *row) value { return intValue(orderDate(r)) }},
				{name: "customerNo", typ: typeInt, description: "Customer (Associate.customerNo).",
					gen: func(r *row) value {
						a := orderCustomer(r)
						if a < 0 {
							return intValue(0)
						}
						return intValue(customerBase + int64(a) + 1)
					}},
				{name: "currencyNo", typ: typeInt, description: "Currency of the order.",
					gen: func(r *row) value { return intValue(orderCurrency(r)) }},
				{name: "exchangeRate", typ: typeDecimal, scale: 4, description: "NOK per unit of the order currency.",
					gen: func(r *row) value {
						base := exchangeRates[orderCurrency(r)]
						if base == exchangeRates[47] {
							return intValue(base)
						}
						return intValue(base * (10000 + int64(r.h(4)%400) - 200) / 10000)
					}},
				{name: "totalAmount", typ: typeDecimal, scale: 2, description: "Order total in NOK.",
					gen: func(r *row) value { return intValue(10000 + int64(r.hv(5)%25_000_000)) }},
				{name: "yourReference", typ: typeString, description: "The customer's reference.",
					gen: func(r *row) value { return strValue(personName(r.h(6))) }},
				{name: "deliveryDate", typ: typeInt, description: "Requested delivery date (yyyymmdd).",
					gen: func(r *row) value { return intValue(addDays(orderDate(r), int(r.h(7)%21))) }},
				{name: "invoiced", typ: typeBoolean, description: "Invoiced.",
					gen: func(r *row) value { return boolValue(r.hv(8)%3 != 0) }},
			},
			relations: []*relation{
				{field: "joinup_Associate_via_Customer", kind: joinUp, target: "associate", from: []string{"customerNo"}, to: []string{"customerNo"},
					description: "The customer of the order."},
				{field: "joindown_OrderLine_via_Order", kind: joinDown, target: "orderLine", from: []string{"orderNo"}, to: []string{"orderNo"},
					description: "The lines of the order."},
			},
		},
		{
			name: "OrderLine", field: "orderLine",
			description: "Sales order lines.",
			key:         []string{"orderNo", "lineNo"},
			columns: []*column{
				{name: "orderNo", typ: typeInt, description: "Order number (key, with lineNo).",
					gen: func(r *row) value { o, _ := lineAddr(r.ts, r.idx); return intValue(int64(o) + 1) }},
				{name: "lineNo", typ: typeInt, description: "Line number within the order.",
					gen: func(r *row) value { _, l := lineAddr(r.ts, r.idx); return intValue(int64(l)) }},
				{name: "productNo", typ: typeString, description: "Product number.",
					gen: func(r *row) value {
						return strValue("P" + itoa(10000+int(r.h(2)%uint64(len(products)))*37))
					}},
				{name: "description", typ: typeString, description: "Line text.",
					gen: func(r *row) value { return strValue(lineProduct(r).description) }},
				{name: "unit", typ: typeString, description: "Unit of the quantity.",
					gen: func(r *row) value { return strValue(lineProduct(r).unit) }},
				{name: "quantity", typ: typeDecimal, scale: 3, description: "Quantity.",
					gen: func(r *row) value { return intValue(lineQuantity(r)) }},
				{name: "priceInCurrency", typ: typeDecimal, scale: 2, description: "Unit price in the order currency.",
					gen: func(r *row) value { return intValue(linePrice(r)) }},
				{name: "discountPercent", typ: typeDecimal, scale: 2, description: "Discount in percent.",
					gen: func(r *row) value { return intValue(lineDiscount(r)) }},
				{name: "amountInCurrency", typ: typeDecimal, scale: 2, description: "Line amount in the order currency, after discount.",
					gen: func(r *row) value { return intValue(lineAmount(r)) }},
			},
			relations: []*relation{
				{field: "joinup_Order", kind: joinUp, target: "order", from: []string{"orderNo"}, to: []string{"orderNo"},
					description: "The order of the line."},
			},
		},
		{
			name: "Country", field: "country",
			description: "Countries.",
			key:         []string{"countryNo"},
			fixedRows:   len(countries),
			columns: []*column{
				{name: "countryNo", typ: typeInt, description: "Country number: the dialling code (key).",
					gen: func(r *row) value { return intValue(countries[r.idx].no) }},
				{name: "name", typ: typeString, description: "Name.",
					gen: func(r *row) value { return strValue(countries[r.idx].name) }},
				{name: "isoCode", typ: typeString, description: "ISO 3166-1 alpha-2 code.",
					gen: func(r *row) value { return strValue(countries[r.idx].iso) }},
				{name: "currencyNo", typ: typeInt, description: "Currency of the country.",
					gen: func(r *row) value { return intValue(countries[r.idx].currencyNo) }},
			},
		},
	}
}
