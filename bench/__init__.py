"""The benchmark protocol, shared by the controller and the hosts: the facts every part derives from
(`bench.facts`), sweep definitions and their expansion (`bench.sweeps`), the results layout
(`bench.layout`), job files (`bench.jobfile`) and the host-side runners (`bench.sweep`,
`bench.train_stage`). Standard library and PyYAML only: the modelzoo role ships it to every host."""
