// Package graph is the engine of the sandbox's Business NXT GraphQL emulator.
//
// One Go model of company tables (model.go) yields the schema SDL (sdl.go),
// the row generators and the relations (joinup_/joindown_ fields). Requests
// are parsed and validated by github.com/vektah/gqlparser/v2 against that
// schema and run by a small executor that streams the JSON response.
//
// Rows are not stored: the value of every column is a pure function of
// (company, table, row index), seeded by a hash of the tuple, so a table of
// ten million rows costs no memory. Row indexes follow the table's key order.
// changedTimestamp grows with the index (in instants; the server's wall clock
// steps back at the autumn fall-back), so key order and the incremental order
// (changedTimestamp, then key) are served in O(page) by direct offsets and
// binary search. Rows touched through Engine.Touch are kept in a small
// override set and merged into the ordered streams.
//
// Filters follow SQL Server, which the real service runs on: a comparison with a null column value is false,
// except _eq: null (and a null in _in); strings compare case-insensitively
// with æ ø å after z, and _like takes % and _ as wildcards. Every order ends
// with the key, ascending, so it is total; nulls sort first. An empty _or adds
// no condition.
//
// Timestamps are server local time without zone (Options.Location, default
// Europe/Oslo), written as 2006-01-02T15:04:05.000. Cursors are opaque base64
// strings of the 1-based position in the filtered, ordered result (offset
// paging, like the SQL behind the real service): a row that changes between
// two pages can shift the positions of the rows after it.
package graph
