"""The benchmark protocol, shared by the controller and the hosts: the facts every part derives from
(`bench.facts`), the results contract (`bench.records`: one typed record per result file), the
results layout (`bench.layout`), job files (`bench.jobfile`) and the host-side runners (`bench.sweep`,
`bench.capacity_run`, `bench.train_stage`). Standard library only: the modelzoo role ships it to every
host. Controller-only parts (sweep definitions, which need PyYAML) live in `bench.controller`, which
the bundle leaves out."""
