"""What the scorecard API answers, shaped for a frontend to render directly, and how the
answers are put together from read-model rows or from the aggregate's state after a command.
One module per concept; status and direction are derived with the domain's own rules
(`scorecard.domain.rules`), so the page, the command answers and the events agree."""
