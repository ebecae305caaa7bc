#!/bin/bash
# Acceptance for issue 5 on the fresh clone: uninterrupted small run, then a run killed with -9 midway and resumed.
cd /tmp/fresh5
rm -rf /tmp/acc5 && mkdir -p /tmp/acc5
S=/tmp/acc5
start=$(date +%s)
.venv/bin/ctrobust reproduce --config small --store $S/uninterrupted.sqlite --out $S/uninterrupted --no-progress > $S/uninterrupted.log 2>&1
echo "uninterrupted rc $? wall $(( $(date +%s) - start )) s" >> $S/steps.log
.venv/bin/ctrobust reproduce --config small --store $S/killed.sqlite --out $S/killed --no-progress > $S/killed_first.log 2>&1 &
pid=$!
sleep 150
kill -9 $pid; wait $pid 2>/dev/null
echo "killed at 150 s: cells=$(sqlite3 $S/killed.sqlite 'select count(*) from cells') runs=$(sqlite3 $S/killed.sqlite 'select count(*) from runs')" >> $S/steps.log
sqlite3 $S/killed.sqlite "select key from cells order by key" > $S/keys_before.txt
start=$(date +%s)
.venv/bin/ctrobust reproduce --config small --store $S/killed.sqlite --out $S/killed --no-progress > $S/resumed.log 2>&1
echo "resumed rc $? wall $(( $(date +%s) - start )) s" >> $S/steps.log
sqlite3 $S/killed.sqlite "select key from cells order by key" > $S/keys_after.txt
echo "cells uninterrupted=$(sqlite3 $S/uninterrupted.sqlite 'select count(*) from cells') killed+resumed=$(sqlite3 $S/killed.sqlite 'select count(*) from cells') runs=$(sqlite3 $S/killed.sqlite 'select count(*) from runs')" >> $S/steps.log
echo "keys before kill all kept: $(comm -23 $S/keys_before.txt $S/keys_after.txt | wc -l) missing" >> $S/steps.log
echo "cells created after restart with a key stored before: $(comm -12 $S/keys_before.txt <(sqlite3 $S/killed.sqlite "select key from cells where created > (select max(created) from cells where key in (select key from cells)) " ) | wc -l)" >> $S/steps.log
cmp $S/uninterrupted/table.csv $S/killed/table.csv && echo "table.csv identical" >> $S/steps.log
cmp $S/uninterrupted/table.md $S/killed/table.md && echo "table.md identical" >> $S/steps.log
echo done >> $S/steps.log
