# Checks that the files of one room include only what the room may use (run by
# pullgate_room() in proxy/CMakeLists.txt at build time; a wrong include fails the
# build). Arguments, lists joined with "|":
#   ROOM       the room's name, for messages
#   FILES      its sources and headers
#   ALLOWED    prefixes of project includes ("..." includes) it may use
#   FORBIDDEN  prefixes it may not use even where ALLOWED would let it
#   NO_IO      ON: no Asio or Beast header either (the room does no I/O)
#   STAMP      file touched when the check passes
string(REPLACE "|" ";" files "${FILES}")
string(REPLACE "|" ";" allowed "${ALLOWED}")
string(REPLACE "|" ";" forbidden "${FORBIDDEN}")
set(errors "")
foreach(file IN LISTS files)
  file(STRINGS "${file}" lines REGEX "^[ \t]*#[ \t]*include")
  foreach(line IN LISTS lines)
    if(line MATCHES "#[ \t]*include[ \t]*\"([^\"]+)\"")
      set(included "${CMAKE_MATCH_1}")
      set(ok FALSE)
      foreach(prefix IN LISTS allowed)
        string(FIND "${included}" "${prefix}" at)
        if(at EQUAL 0)
          set(ok TRUE)
        endif()
      endforeach()
      foreach(prefix IN LISTS forbidden)
        string(FIND "${included}" "${prefix}" at)
        if(at EQUAL 0)
          set(ok FALSE)
        endif()
      endforeach()
      if(NOT ok)
        list(APPEND errors "${file}: includes \"${included}\", which ${ROOM} may not use")
      endif()
    elseif(NO_IO AND line MATCHES "<boost/(asio|beast)[/.>]")
      list(APPEND errors "${file}: includes a Boost.${CMAKE_MATCH_1} header, and ${ROOM} does no I/O")
    endif()
  endforeach()
endforeach()
if(errors)
  # One line each, unwrapped (message() would fold them).
  foreach(error IN LISTS errors)
    execute_process(COMMAND ${CMAKE_COMMAND} -E echo "${error}")
  endforeach()
  message(FATAL_ERROR "${ROOM}: includes it may not use (see proxy/CMakeLists.txt, and ../shared/DESIGN.md, \"Parts\")")
endif()
file(TOUCH "${STAMP}")
