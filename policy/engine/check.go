package engine

// tablesTampered tells whether the tables in the kernel differ from what
// the engine installed last (a flushed chain or map, a deleted or inserted
// rule, a deleted table: `nft flush ruleset`), and then warns and counts.
// Before the first apply there is nothing to compare.
func (p *Engine) tablesTampered() bool {
	if p.applied.Load() == 0 {
		return false
	}
	diff, err := p.enf.Changed()
	if err != nil {
		p.log.Warn("cannot check the policy tables; applying again", "err", err)
		p.restored.Add(1)
		return true
	}
	if diff == "" {
		return false
	}
	p.restored.Add(1)
	p.log.Warn("policy tables changed by someone else; applying again", "change", diff)
	return true
}
