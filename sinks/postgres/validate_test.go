package postgres

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/sinks"
)

func TestSnakeCase(t *testing.T) {
	for in, want := range map[string]string{
		"associateNo":                  "associate_no",
		"joinup_Country":               "joinup_country",
		"joindown_OrderLine_via_Order": "joindown_order_line_via_order",
		"vismaNetCompanyId":            "visma_net_company_id",
		"orderID":                      "order_id",
		"XMLName":                      "xml_name",
		"address2Line":                 "address2_line",
		"gln":                          "gln",
		"already_snake":                "already_snake",
		"Name":                         "name",
	} {
		require.Equal(t, want, snakeCase(in), in)
	}
}

func TestParseTable(t *testing.T) {
	schema, table, err := parseTable("bnxt.associate")
	require.NoError(t, err)
	require.Equal(t, []string{"bnxt", "associate"}, []string{schema, table})
	schema, table, err = parseTable("associate")
	require.NoError(t, err)
	require.Equal(t, []string{"public", "associate"}, []string{schema, table})
}

func TestValidate(t *testing.T) {
	fields := []string{"associateNo", "name", "associate_no2", "customerNo", "joinup_Country"}
	valid := func() Config {
		return Config{DSN: "postgres://nxtcron@db.example.com/warehouse", Table: "bnxt.associate",
			Key: []string{"associateNo"}, Mode: ModeUpsert, Columns: ColumnsTyped}
	}
	tests := []struct {
		name        string
		edit        func(*Config)
		incremental bool
		fields      []string
		key         string
		errContains string
	}{
		{name: "valid", edit: func(*Config) {}},
		{name: "valid key=value dsn", edit: func(c *Config) { c.DSN = "host=db.example.com dbname=warehouse user=nxtcron" }},
		{name: "append without key", edit: func(c *Config) { c.Mode, c.Key = ModeAppend, nil }},
		{name: "jsonb replace", edit: func(c *Config) { c.Mode, c.Columns = ModeReplace, ColumnsJSONB }},
		{name: "dsn missing", edit: func(c *Config) { c.DSN = "" }, key: "dsn", errContains: "required: the target database"},
		{name: "dsn invalid", edit: func(c *Config) { c.DSN = "postgres://u:pw@db:notaport/x" }, key: "dsn", errContains: "not a valid Postgres connection string"},
		{name: "table missing", edit: func(c *Config) { c.Table = "" }, key: "table", errContains: "required: schema.table"},
		{name: "table upper case", edit: func(c *Config) { c.Table = "bnxt.Associate" }, key: "table", errContains: `"Associate": names must be lower-case letters, digits and _`},
		{name: "table three parts", edit: func(c *Config) { c.Table = "db.bnxt.associate" }, key: "table", errContains: `"bnxt.associate": names must be`},
		{name: "table empty schema", edit: func(c *Config) { c.Table = ".associate" }, key: "table", errContains: "must be schema.table"},
		{name: "table too long", edit: func(c *Config) { c.Table = "bnxt." + strings.Repeat("a", 64) }, key: "table", errContains: "longer than 63 bytes"},
		{name: "table reserved", edit: func(c *Config) { c.Table = "bnxt.nxtcron_sink_state" }, key: "table", errContains: "the sink uses for its own tables"},
		{name: "mode unknown", edit: func(c *Config) { c.Mode = "merge" }, key: "mode", errContains: `must be upsert, append or replace, not "merge"`},
		{name: "columns unknown", edit: func(c *Config) { c.Columns = "json" }, key: "columns", errContains: `must be typed or jsonb, not "json"`},
		{name: "upsert needs key", edit: func(c *Config) { c.Key = nil }, key: "key", errContains: "required with mode upsert"},
		{name: "replace refused when incremental", edit: func(c *Config) { c.Mode = ModeReplace }, incremental: true, key: "mode", errContains: "replace is refused for an incremental job"},
		{name: "key not selected", edit: func(c *Config) { c.Key = []string{"associateNO"} }, key: "key[0]", errContains: `associateNO is not selected under items (did you mean "associateNo"?)`},
		{name: "key twice", edit: func(c *Config) { c.Key = []string{"associateNo", "associateNo"} }, key: "key[1]", errContains: "associateNo is listed twice"},
		{name: "column collision", edit: func(*Config) {}, fields: []string{"associateNo", "associate_no"}, key: "columns", errContains: "fields associateNo and associate_no both map to column associate_no"},
		{name: "reserved column", edit: func(*Config) {}, fields: []string{"associateNo", "companyNo"}, key: "columns", errContains: "field companyNo maps to column company_no, which the sink uses itself"},
		{name: "jsonb data column", edit: func(c *Config) { c.Columns, c.Key = ColumnsJSONB, []string{"data"} }, fields: []string{"data", "name"}, key: "columns", errContains: "field data maps to column data, which the sink uses itself"},
		{name: "jsonb ignores other fields", edit: func(c *Config) { c.Columns = ColumnsJSONB }, fields: []string{"associateNo", "companyNo"}},
		{name: "long column", edit: func(*Config) {}, fields: []string{"associateNo", strings.Repeat("x", 64)}, key: "columns", errContains: "longer than 63 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.edit(&c)
			f := tt.fields
			if f == nil {
				f = fields
			}
			errs := c.Validate(sinks.JobInfo{Name: "associates", Incremental: tt.incremental, Fields: f})
			if tt.errContains == "" {
				require.Empty(t, errs)
				return
			}
			require.Len(t, errs, 1, "%v", errs)
			require.Equal(t, tt.key, errs[0].Key)
			require.Contains(t, errs[0].Message, tt.errContains)
			require.NotContains(t, errs[0].Message, "pw@", "the DSN is never quoted")
		})
	}
}

func TestDefaults(t *testing.T) {
	c := Type.New().(*Config)
	require.Equal(t, ModeUpsert, c.Mode)
	require.Equal(t, ColumnsTyped, c.Columns)
}
