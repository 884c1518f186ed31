// Package spec parses a job's schedule and computes its slots.
//
// A schedule is a cron spec of 5 fields (minute hour day-of-month month
// day-of-week), 6 with a leading seconds field, a descriptor (@yearly,
// @annually, @monthly, @weekly, @daily, @midnight, @hourly), or @every D. The
// fields are parsed by robfig/cron/v3; the slot arithmetic is this package's
// own, because robfig's SpecSchedule.Next does not follow cron's daylight
// saving rules.
//
// # Daylight saving time
//
// Slots follow ISC cron. A spec has a fixed hour when its hour field has no
// "*" and no step (descriptors other than @hourly are fixed at hour 0). For
// such specs each matching wall time runs at the first instant the job's
// clock shows that wall time or a later one:
//
//   - a wall time skipped by a spring-forward jump runs at the first instant
//     after the jump (30 2 * * * in Europe/Oslo on the last Sunday of March
//     runs at 03:00 CEST); several wall times inside one jump run once;
//   - a wall time that repeats in autumn runs at its first occurrence only.
//
// Specs with "*" or a step in the hour field follow absolute time: an instant
// is a slot when the wall time it shows in the zone matches the spec. Every
// real hour and minute is considered once; wall times a spring-forward jump
// removes do not exist and do not run, and wall times an autumn fall-back
// repeats run at both occurrences, an hour apart in real time. So
// */15 * * * * runs every 15 real minutes across both transitions, and
// 30 * * * * once every real hour.
//
// @every D does not depend on the zone: its slots are the multiples of D since
// the Unix epoch, so every replica computes the same slots.
package spec
