"""The avatar's performance track, shared by every protocol: mouth shapes (visemes) timed to
the reply audio, and the persona's emotion per sentence."""
