"""Who did what, provably: SSH signatures on people's actions, the trust file, seals."""
