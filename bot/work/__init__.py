"""Work: one worker per busy channel, one step at a time in Slack order — the next turn, a reset,
recovery of a turn a crash left unfinished — with pure decisions about what comes next and what a
failure means, and a thin runner that carries them out."""
