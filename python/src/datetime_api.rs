//! CPython's datetime C API, taken from its capsule (`datetime.datetime_CAPI`).
//!
//! pyo3 offers it only outside the limited API: under abi3 its
//! `PyDate::new`/`PyDateTime::new` call the class with a tuple of Python
//! ints, which the class then parses, several times the cost of the C call,
//! and a million-row result makes millions of them. `PyCapsule_Import` is in
//! the stable ABI, and the capsule's struct has only grown at its end since
//! Python 3.7 (every field used here is older), so one layout serves every
//! CPython from 3.9 on; psycopg2 builds its values through the same table.

use std::os::raw::c_int;

use pyo3::ffi::{self, PyObject, PyTypeObject};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;

use crate::temporal::{Clock, Day};

/// The head of CPython's `PyDateTime_CAPI` (Include/datetime.h), up to the
/// last field used.
#[repr(C)]
struct Capi {
    date_type: *mut PyTypeObject,
    datetime_type: *mut PyTypeObject,
    time_type: *mut PyTypeObject,
    delta_type: *mut PyTypeObject,
    tzinfo_type: *mut PyTypeObject,
    timezone_utc: *mut PyObject,
    date_from_date: unsafe extern "C" fn(c_int, c_int, c_int, *mut PyTypeObject) -> *mut PyObject,
    #[allow(clippy::type_complexity)]
    datetime_from_date_and_time: unsafe extern "C" fn(
        c_int,
        c_int,
        c_int,
        c_int,
        c_int,
        c_int,
        c_int,
        *mut PyObject,
        *mut PyTypeObject,
    ) -> *mut PyObject,
}

/// The capsule's table, which lives as long as the interpreter's `datetime`
/// module: never freed, never written after import.
struct Api(&'static Capi);

// SAFETY: the table is immutable, and is only used with the GIL held.
unsafe impl Send for Api {}
// SAFETY: as above.
unsafe impl Sync for Api {}

fn api(py: Python<'_>) -> PyResult<&'static Capi> {
    static API: GILOnceCell<Api> = GILOnceCell::new();
    API.get_or_try_init(py, || {
        // SAFETY: PyCapsule_Import returns the capsule's pointer, or null
        // with an exception set; the name is the one datetime registers.
        let table = unsafe { ffi::PyCapsule_Import(c"datetime.datetime_CAPI".as_ptr(), 0) };
        if table.is_null() {
            return Err(PyErr::fetch(py));
        }
        // SAFETY: the capsule holds a PyDateTime_CAPI, whose head is `Capi`.
        Ok(Api(unsafe { &*(table as *const Capi) }))
    })
    .map(|api| api.0)
}

/// `datetime.date(year, month, day)`; an error (Python's `ValueError`) for
/// a day that does not exist.
pub(crate) fn date(py: Python<'_>, year: i32, month: u8, day: u8) -> PyResult<Bound<'_, PyAny>> {
    let api = api(py)?;
    // SAFETY: the C API's own constructor, called with the GIL held; it
    // returns a new reference or null with an exception set.
    unsafe {
        let made = (api.date_from_date)(year, month.into(), day.into(), api.date_type);
        Bound::from_owned_ptr_or_err(py, made)
    }
}

/// `datetime.datetime(...)` with `tzinfo` (`None` for a naive one); an
/// error for one that does not exist.
pub(crate) fn datetime<'py>(
    py: Python<'py>,
    (year, month, day): Day,
    (hour, minute, second, micro): Clock,
    tzinfo: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let api = api(py)?;
    let micro =
        c_int::try_from(micro).map_err(|_| pyo3::exceptions::PyValueError::new_err("microsecond out of range"))?;
    let none = py.None();
    let zone = tzinfo.map_or(none.as_ptr(), Bound::as_ptr);
    // SAFETY: as in `date`; `zone` is borrowed for the call.
    unsafe {
        let made = (api.datetime_from_date_and_time)(
            year,
            month.into(),
            day.into(),
            hour.into(),
            minute.into(),
            second.into(),
            micro,
            zone,
            api.datetime_type,
        );
        Bound::from_owned_ptr_or_err(py, made)
    }
}
