from sipwatch.console import main

main()
