from sipwatch.cli import console

console()
