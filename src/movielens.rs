//! MovieLens loaders: RecBole atomic files (`.inter`, `.item`) and the
//! original GroupLens formats (`u.data`/`u.item`, `ratings.dat`/`movies.dat`,
//! `ratings.csv`/`movies.csv`), into a [`Catalog`] of movies (title, year,
//! genres) and a list of ratings.
//!
//! MovieLens may not be redistributed; `scripts/fetch_movielens.sh` fetches
//! ml-100k from RecBole's PyPI package.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::catalog::{Attribute, Catalog, Item};
use crate::error::{Error, Result};

/// One rating.
#[derive(Clone, Debug, PartialEq)]
pub struct Rating {
    /// External user id.
    pub user: String,
    /// Internal item id in [`MovieLens::catalog`].
    pub item: u32,
    /// The rating (1–5 in the classic sets).
    pub rating: f32,
    /// Unix seconds.
    pub ts: i64,
}

/// A loaded MovieLens dataset.
#[derive(Clone, Debug)]
pub struct MovieLens {
    /// Movies: `title`, `attributes.year`, `tags.genre`.
    pub catalog: Catalog,
    /// Ratings in file order.
    pub ratings: Vec<Rating>,
}

fn bad(path: &Path, line: usize, field: &str, reason: impl Into<String>) -> Error {
    Error::InvalidData {
        path: path.to_path_buf(),
        line: Some(line),
        field: field.into(),
        reason: reason.into(),
    }
}

/// Reads a text file, decoding Latin-1 when it is not UTF-8 (the original
/// MovieLens files are Latin-1), and splits lines accepting CRLF.
fn read_lines(path: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|&b| b as char).collect(),
    };
    Ok(text.lines().map(|l| l.trim_end_matches('\r').to_string()).collect())
}

fn find(dir: &Path, names: &[&str]) -> Option<PathBuf> {
    names.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

fn find_ext(dir: &Path, ext: &str) -> Result<Option<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|x| x.to_str()) == Some(ext))
        .collect();
    found.sort();
    Ok(found.into_iter().next())
}

/// Where movies are read from, before ids are interned.
struct Movie {
    id: String,
    title: String,
    year: Option<f64>,
    genres: Vec<String>,
}

impl MovieLens {
    /// Loads whichever supported format `dir` holds.
    pub fn load(dir: impl AsRef<Path>) -> Result<MovieLens> {
        let dir = dir.as_ref();
        if let Some(inter) = find_ext(dir, "inter")? {
            let item = find_ext(dir, "item")?;
            return load_atomic(&inter, item.as_deref());
        }
        if let Some(data) = find(dir, &["u.data"]) {
            return load_delimited(&data, find(dir, &["u.item"]).as_deref(), Format::Ml100k);
        }
        if let Some(data) = find(dir, &["ratings.dat"]) {
            return load_delimited(&data, find(dir, &["movies.dat"]).as_deref(), Format::Ml1m);
        }
        if let Some(data) = find(dir, &["ratings.csv"]) {
            return load_delimited(&data, find(dir, &["movies.csv"]).as_deref(), Format::Csv);
        }
        Err(Error::InvalidData {
            path: dir.to_path_buf(),
            line: None,
            field: "<directory>".into(),
            reason: "no MovieLens files found (expected *.inter, u.data, ratings.dat or ratings.csv)".into(),
        })
    }
}

fn finish(movies: Vec<Movie>, raw: Vec<(String, String, f32, i64)>, ratings_path: &Path) -> Result<MovieLens> {
    let mut seen: HashMap<String, ()> = HashMap::new();
    let mut items: Vec<Item> = Vec::new();
    for m in movies {
        if seen.insert(m.id.clone(), ()).is_some() {
            continue;
        }
        let mut item = Item::new(m.id, m.title);
        if let Some(y) = m.year {
            item.attributes.insert("year".into(), Attribute::Number(y));
        }
        if !m.genres.is_empty() {
            item.tags.insert("genre".into(), m.genres);
        }
        items.push(item);
    }
    // Rated movies missing from the movie file still become items (titled by id).
    for (_, item, _, _) in &raw {
        if seen.insert(item.clone(), ()).is_none() {
            items.push(Item::new(item.clone(), item.clone()));
        }
    }
    let catalog = Catalog::new(items)?;
    let mut ratings = Vec::with_capacity(raw.len());
    for (i, (user, item, rating, ts)) in raw.into_iter().enumerate() {
        let Some(idx) = catalog.index_of(&item) else {
            return Err(bad(ratings_path, i + 1, "item", format!("unknown item `{item}`")));
        };
        ratings.push(Rating {
            user,
            item: idx,
            rating,
            ts,
        });
    }
    Ok(MovieLens { catalog, ratings })
}

fn load_atomic(inter: &Path, item: Option<&Path>) -> Result<MovieLens> {
    let lines = read_lines(inter)?;
    let header: Vec<String> = lines
        .first()
        .map(|h| h.split('\t').map(|c| c.split(':').next().unwrap_or("").to_string()).collect())
        .unwrap_or_default();
    let col = |name: &str| header.iter().position(|h| h == name);
    let (Some(u), Some(i)) = (col("user_id"), col("item_id")) else {
        return Err(bad(
            inter,
            1,
            "<header>",
            "needs user_id and item_id columns (RecBole atomic format)",
        ));
    };
    let (r, t) = (col("rating"), col("timestamp"));
    let mut raw = Vec::new();
    for (n, line) in lines.iter().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let get = |c: usize, name: &str| f.get(c).copied().ok_or_else(|| bad(inter, n + 1, name, "missing column"));
        let rating = match r {
            Some(c) => get(c, "rating")?
                .trim()
                .parse::<f32>()
                .map_err(|_| bad(inter, n + 1, "rating", "not a number"))?,
            None => 1.0,
        };
        let ts = match t {
            Some(c) => get(c, "timestamp")?
                .trim()
                .parse::<f64>()
                .map_err(|_| bad(inter, n + 1, "timestamp", "not a number"))? as i64,
            None => n as i64,
        };
        raw.push((
            get(u, "user_id")?.trim().to_string(),
            get(i, "item_id")?.trim().to_string(),
            rating,
            ts,
        ));
    }
    let mut movies = Vec::new();
    if let Some(path) = item {
        let lines = read_lines(path)?;
        let header: Vec<String> = lines
            .first()
            .map(|h| h.split('\t').map(|c| c.split(':').next().unwrap_or("").to_string()).collect())
            .unwrap_or_default();
        let col = |name: &str| header.iter().position(|h| h == name);
        let Some(id) = col("item_id") else {
            return Err(bad(path, 1, "<header>", "needs an item_id column"));
        };
        let title = col("movie_title").or_else(|| col("title"));
        let year = col("release_year").or_else(|| col("year"));
        let genre = col("class").or_else(|| col("genre"));
        for line in lines.iter().skip(1).filter(|l| !l.trim().is_empty()) {
            let f: Vec<&str> = line.split('\t').collect();
            let Some(mid) = f.get(id) else { continue };
            movies.push(Movie {
                id: mid.trim().to_string(),
                title: title
                    .and_then(|c| f.get(c))
                    .map(|s| s.trim().to_string())
                    .unwrap_or_else(|| mid.to_string()),
                year: year.and_then(|c| f.get(c)).and_then(|s| s.trim().parse::<f64>().ok()),
                genres: genre
                    .and_then(|c| f.get(c))
                    .map(|s| s.split_whitespace().map(str::to_string).collect())
                    .unwrap_or_default(),
            });
        }
    }
    finish(movies, raw, inter)
}

#[derive(Clone, Copy)]
enum Format {
    Ml100k,
    Ml1m,
    Csv,
}

/// Splits a CSV line with double-quoted fields.
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// "Toy Story (1995)" → ("Toy Story", Some(1995)).
fn split_year(title: &str) -> (String, Option<f64>) {
    let t = title.trim();
    if let (Some(open), true) = (t.rfind('('), t.ends_with(')')) {
        if let Ok(y) = t[open + 1..t.len() - 1].trim().parse::<f64>() {
            return (t[..open].trim().to_string(), Some(y));
        }
    }
    (t.to_string(), None)
}

const ML100K_GENRES: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

fn load_delimited(ratings: &Path, movies: Option<&Path>, format: Format) -> Result<MovieLens> {
    let mut raw = Vec::new();
    for (n, line) in read_lines(ratings)?.iter().enumerate() {
        if line.trim().is_empty() || (matches!(format, Format::Csv) && n == 0) {
            continue;
        }
        let f: Vec<String> = match format {
            Format::Ml100k => line.split('\t').map(str::to_string).collect(),
            Format::Ml1m => line.split("::").map(str::to_string).collect(),
            Format::Csv => csv_fields(line),
        };
        if f.len() < 4 {
            return Err(bad(ratings, n + 1, "<line>", "expected user, item, rating, timestamp"));
        }
        let rating = f[2]
            .trim()
            .parse::<f32>()
            .map_err(|_| bad(ratings, n + 1, "rating", "not a number"))?;
        let ts = f[3]
            .trim()
            .parse::<i64>()
            .map_err(|_| bad(ratings, n + 1, "timestamp", "not an integer"))?;
        raw.push((f[0].trim().to_string(), f[1].trim().to_string(), rating, ts));
    }
    let mut list = Vec::new();
    if let Some(path) = movies {
        for (n, line) in read_lines(path)?.iter().enumerate() {
            if line.trim().is_empty() || (matches!(format, Format::Csv) && n == 0) {
                continue;
            }
            let movie = match format {
                Format::Ml100k => {
                    let f: Vec<&str> = line.split('|').collect();
                    let (title, year) = split_year(f.get(1).copied().unwrap_or(""));
                    let flags = f.iter().skip(5);
                    let genres = flags
                        .zip(ML100K_GENRES)
                        .filter(|(v, _)| v.trim() == "1")
                        .map(|(_, g)| g.to_string())
                        .collect();
                    Movie {
                        id: f.first().map(|s| s.trim().to_string()).unwrap_or_default(),
                        title,
                        year,
                        genres,
                    }
                }
                Format::Ml1m | Format::Csv => {
                    let f: Vec<String> = if matches!(format, Format::Ml1m) {
                        line.split("::").map(str::to_string).collect()
                    } else {
                        csv_fields(line)
                    };
                    let (title, year) = split_year(f.get(1).map(String::as_str).unwrap_or(""));
                    let genres = f
                        .get(2)
                        .map(|g| g.split('|').filter(|g| *g != "(no genres listed)").map(str::to_string).collect())
                        .unwrap_or_default();
                    Movie {
                        id: f.first().map(|s| s.trim().to_string()).unwrap_or_default(),
                        title,
                        year,
                        genres,
                    }
                }
            };
            if movie.id.is_empty() {
                return Err(bad(path, n + 1, "id", "missing movie id"));
            }
            list.push(movie);
        }
    }
    finish(list, raw, ratings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn reads_recbole_atomic_files_with_crlf_and_string_ids() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "x.inter",
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\r\nu1\tm-a\t4\t100\r\nu2\tm-b\t2.5\t200\r\n",
        );
        write(
            d.path(),
            "x.item",
            "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\r\nm-a\tToy Story\t1995\tAnimation Comedy\r\n",
        );
        let ml = MovieLens::load(d.path()).unwrap();
        assert_eq!(ml.ratings.len(), 2);
        assert_eq!(ml.catalog.len(), 2, "a rated movie missing from .item still becomes an item");
        let toy = ml.catalog.get("m-a").unwrap();
        assert_eq!(toy.title, "Toy Story");
        assert_eq!(toy.tags["genre"], vec!["Animation", "Comedy"]);
        assert_eq!(ml.ratings[1].rating, 2.5);
    }

    #[test]
    fn reads_the_original_formats() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "u.data", "1\t10\t5\t881250949\n");
        let mut flags = vec!["0"; 19];
        flags[5] = "1";
        write(
            d.path(),
            "u.item",
            &format!("10|Heat (1995)|01-Jan-1995||http://x|{}\n", flags.join("|")),
        );
        let ml = MovieLens::load(d.path()).unwrap();
        let heat = ml.catalog.get("10").unwrap();
        assert_eq!((heat.title.as_str(), heat.attributes["year"].as_number()), ("Heat", Some(1995.0)));
        assert_eq!(heat.tags["genre"], vec!["Comedy"]);

        let d = tempfile::tempdir().unwrap();
        write(d.path(), "ratings.csv", "userId,movieId,rating,timestamp\n1,7,4.0,964982703\n");
        write(
            d.path(),
            "movies.csv",
            "movieId,title,genres\n7,\"Sabrina, Part 2 (1995)\",Comedy|Romance\n",
        );
        let ml = MovieLens::load(d.path()).unwrap();
        assert_eq!(ml.catalog.get("7").unwrap().title, "Sabrina, Part 2");

        let d = tempfile::tempdir().unwrap();
        write(d.path(), "ratings.dat", "1::3::4::978300760\n");
        write(d.path(), "movies.dat", "3::Grumpier Old Men (1995)::Comedy|Romance\n");
        assert_eq!(MovieLens::load(d.path()).unwrap().catalog.get("3").unwrap().tags["genre"].len(), 2);
    }

    #[test]
    fn bad_lines_name_file_line_and_field() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "u.data", "1\t10\t5\t881250949\n1\t11\tfive\t1\n");
        let e = MovieLens::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("u.data") && e.contains("line 2") && e.contains("rating"), "{e}");
        assert!(MovieLens::load(tempfile::tempdir().unwrap().path()).is_err());
    }
}
