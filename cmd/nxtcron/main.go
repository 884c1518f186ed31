// Command nxtcron runs unattended imports from the Visma Business NXT
// GraphQL API on cron schedules. See README.md and docs/.
package main

import (
	"os"

	_ "time/tzdata" // container images may lack zoneinfo
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }
