from krabs.cli import main

main()
