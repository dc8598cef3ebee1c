# cmake -DPOSTERN=bin -DHELP2MAN=help2man -DOUT=postern.8.gz -P man.cmake
# postern(8) from `postern --help`, plus a COMMANDS section holding each subcommand's --help
# (help2man reads only the top-level help), gzip -9n so the page is the same at every build.
cmake_minimum_required(VERSION 3.25)
get_filename_component(_dir "${OUT}" DIRECTORY)
set(_include "${_dir}/postern.h2m")
string(REGEX REPLACE "\\.gz$" "" _page "${OUT}")
# An ASan build runs the same binary: a leak report at exit must not fail the build.
set(ENV{ASAN_OPTIONS} "detect_leaks=0")

# roff and help2man's include syntax: a backslash is \e; a line starting with . or ' would be
# a request, one starting with [ or / a help2man section or pattern.
function(roff_escape out text)
    string(REPLACE "\\" "\\e" text "${text}")
    string(REGEX REPLACE "(^|\n)([.'[/])" "\\1\\\\&\\2" text "${text}")
    set(${out} "${text}" PARENT_SCOPE)
endfunction()

set(_commands "[COMMANDS]\n")
foreach(_command run check probe)
    execute_process(COMMAND "${POSTERN}" ${_command} --help OUTPUT_VARIABLE _help
                    RESULT_VARIABLE _rc)
    if(NOT _rc EQUAL 0)
        message(FATAL_ERROR "${POSTERN} ${_command} --help exited ${_rc}")
    endif()
    # CLI11 prints argv[0], the build's path
    string(REPLACE "${POSTERN} " "postern " _help "${_help}")
    roff_escape(_help "${_help}")
    string(APPEND _commands ".SS \"postern ${_command}\"\n.nf\n${_help}.fi\n")
endforeach()
file(WRITE "${_include}" "${_commands}"
     "[FILES]\n"
     ".TP\n.I /etc/postern/postern.toml\n"
     "The configuration (the annotated example until edited); check it with\n"
     ".BR \"postern check\" .\n"
     ".TP\n.I /usr/lib/systemd/system/postern.service\n"
     "The systemd unit: started as root, postern binds its ports and switches to\n"
     "server.user.\n"
     ".TP\n.I /usr/lib/systemd/system/postern.socket\n"
     "Optional socket activation: systemd keeps the listening sockets across restarts.\n"
     "[SEE ALSO]\n"
     ".BR systemctl (1),\n.BR journalctl (1),\n.BR systemd.socket (5)\n")

execute_process(
    COMMAND "${HELP2MAN}" --no-info --section=8
            "--name=TLS and STARTTLS edge proxy for SMTP, IMAP and POP3"
            "--include=${_include}" "--output=${_page}" "${POSTERN}"
    RESULT_VARIABLE _rc ERROR_VARIABLE _err)
if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "help2man failed (${_rc}): ${_err}")
endif()
file(REMOVE "${OUT}")
execute_process(COMMAND gzip -9nf "${_page}" RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "gzip -9n ${_page} failed")
endif()
